//! Where comments and the user replica live: in memory, or in PostgreSQL.
//!
//! [`Storage`] pairs a comment store with a [`UserReplica`] of matching kind,
//! and wires the replica's `on_deleted` hook to anonymise the deleted user's
//! comments (their `author_id` becomes `NULL`). With PostgreSQL the hook runs
//! in the replica's transaction, so the tombstone and the anonymisation
//! commit together or not at all.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{PgPool, Row as _};
use tessera_event_bus::inbox::{
    Inbox, InboxPrunerHandle, InboxRouterExt as _, InboxTransaction, TxFuture,
};
use tessera_event_bus::outbox::TableName;
use tessera_event_bus::{Envelope, EventContext, HandlerError, Router, Subscriber};
use tessera_user_sync::events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered};
use tessera_user_sync::store::postgres::{PgReplicaStore, PgTransaction};
use tessera_user_sync::store::{DeletedUser, Fields, MemoryStore, NoTransaction, UserState};
use tessera_user_sync::{UserReplica, snapshot::Backfill, snapshot::BackfillReport};

/// The consumer group (and replica name) of this service.
pub const GROUP: &str = "comment-service";

/// A stored comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The comment id (a UUID v7, so ids sort by creation time).
    pub id: String,
    /// The post the comment belongs to.
    pub post_id: String,
    /// The text.
    pub text: String,
    /// The author's user id (the token `sub`); `None` once the author deleted the account.
    pub author_id: Option<String>,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A PostgreSQL query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The replica store failed.
    #[error("user replica error: {0}")]
    Replica(#[from] tessera_user_sync::StoreError),
    /// The inbox could not be set up.
    #[error("inbox error: {0}")]
    Inbox(#[from] tessera_event_bus::outbox::OutboxError),
    /// The schema name is not a valid identifier (1 to 30 lowercase ASCII
    /// letters, digits or underscores, not starting with a digit nor `pg_`).
    #[error("invalid schema name: {0}")]
    InvalidSchema(#[from] tessera_event_bus::outbox::TableNameError),
}

#[derive(Clone)]
enum Comments {
    Memory(Arc<Mutex<Vec<Comment>>>),
    Pg { pool: PgPool, table: String },
}

#[derive(Clone)]
enum Users {
    Memory(UserReplica<MemoryStore>),
    Pg {
        replica: UserReplica<PgReplicaStore>,
        inbox: Inbox,
    },
}

/// Comments plus the local user replica, in memory or in PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    comments: Comments,
    users: Users,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.comments {
            Comments::Memory(_) => "memory",
            Comments::Pg { .. } => "postgres",
        };
        f.debug_struct("Storage")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn table(schema: &str, name: &str) -> Result<TableName, StorageError> {
    Ok(TableName::new(schema, name)?)
}

impl Storage {
    /// Everything in memory: lost on restart. Redelivered events need no
    /// inbox here: the replica's version gate makes a duplicate a no-op, and
    /// the `on_deleted` hook runs only for a new tombstone.
    #[must_use]
    pub fn in_memory() -> Self {
        let comments = Arc::new(Mutex::new(Vec::<Comment>::new()));
        let anonymise = Arc::clone(&comments);
        let replica = UserReplica::builder(GROUP, MemoryStore::new())
            .keep(Fields::DISPLAY_NAME)
            .on_deleted(move |_: &mut NoTransaction, user: &DeletedUser| {
                for c in lock(&anonymise).iter_mut() {
                    if c.author_id.as_deref() == Some(user.user_id.as_str()) {
                        c.author_id = None;
                    }
                }
                Box::pin(async { Ok(()) })
            })
            .build();
        Self {
            comments: Comments::Memory(comments),
            users: Users::Memory(replica),
        }
    }

    /// Everything in PostgreSQL, in the tables `comments`, `user_replica` and
    /// `inbox` of `schema` (created if missing: the migrations run here).
    ///
    /// # Errors
    ///
    /// An invalid schema name, or a failed migration.
    pub async fn postgres(pool: PgPool, schema: &str) -> Result<Self, StorageError> {
        let comments_table = table(schema, "comments")?;
        let t = comments_table.qualified();
        let s = format!("\"{}\"", comments_table.schema());
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {t} (
                 id TEXT PRIMARY KEY,
                 post_id TEXT NOT NULL,
                 author_id TEXT,
                 text TEXT NOT NULL,
                 created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
             );
             CREATE INDEX IF NOT EXISTS comments_post_idx ON {t} (post_id, created_at, id);
             CREATE INDEX IF NOT EXISTS comments_author_idx ON {t} (author_id);"
        ))
        .execute(&pool)
        .await?;

        let store = PgReplicaStore::new(pool.clone(), table(schema, "user_replica")?);
        store.migrate().await?;
        let inbox = Inbox::with_table(pool.clone(), table(schema, "inbox")?);
        inbox.migrate().await?;

        let anonymise: Arc<str> = Arc::from(format!(
            "UPDATE {t} SET author_id = NULL WHERE author_id = $1"
        ));
        let replica = UserReplica::builder(GROUP, store)
            .keep(Fields::DISPLAY_NAME)
            .on_deleted(move |tx: &mut PgTransaction, user: &DeletedUser| {
                let sql = Arc::clone(&anonymise);
                Box::pin(async move {
                    sqlx::query(&sql)
                        .bind(&user.user_id)
                        .execute(&mut **tx)
                        .await?;
                    Ok(())
                })
            })
            .build();
        Ok(Self {
            comments: Comments::Pg { pool, table: t },
            users: Users::Pg { replica, inbox },
        })
    }

    /// The event router of consumer group [`GROUP`] on `subscriber`, with
    /// the replica's handlers for the three user events; `start` it.
    ///
    /// With PostgreSQL each event goes through the inbox (`inbox` table):
    /// a redelivered event that was already processed is acked without
    /// touching the replica. See the crate docs for how the inbox and the
    /// replica's own transaction relate.
    pub fn consumer(&self, subscriber: Arc<dyn Subscriber>) -> Router {
        // Each handled event continues the trace of the request that caused it.
        let router = Router::new(subscriber, GROUP).producer_as_parent();
        match &self.users {
            Users::Memory(replica) => replica.route(router),
            Users::Pg { replica, inbox } => router
                .handle_tx(inbox, inbox_handler::<UserRegistered>(replica.clone()))
                .handle_tx(inbox, inbox_handler::<UserProfileUpdated>(replica.clone()))
                .handle_tx(inbox, inbox_handler::<UserDeleted>(replica.clone())),
        }
    }

    /// With PostgreSQL, starts pruning inbox records older than `retention`
    /// every `interval` (the retention must exceed the longest time the
    /// broker may redeliver an event); `None` in memory, which has no inbox.
    pub fn spawn_inbox_pruner(
        &self,
        retention: std::time::Duration,
        interval: std::time::Duration,
    ) -> Option<InboxPrunerHandle> {
        match &self.users {
            Users::Memory(_) => None,
            Users::Pg { inbox, .. } => Some(inbox.spawn_pruner(retention, interval)),
        }
    }

    /// Runs a backfill into the replica (page through the user service's snapshot).
    ///
    /// # Errors
    ///
    /// The backfill's error; pages applied before it stay applied.
    pub async fn backfill<T>(
        &self,
        backfill: &Backfill<T>,
    ) -> Result<BackfillReport, tessera_user_sync::BackfillError>
    where
        T: tessera_user_sync::snapshot::SnapshotSource,
    {
        match &self.users {
            Users::Memory(replica) => backfill.run(replica).await,
            Users::Pg { replica, .. } => backfill.run(replica).await,
        }
    }

    /// The display names the replica knows for `ids`: a live user maps to
    /// its name, an unknown or deleted user is absent.
    pub(crate) async fn display_names(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, Option<String>>, StorageError> {
        let users = match &self.users {
            Users::Memory(replica) => replica.get_many(ids).await?,
            Users::Pg { replica, .. } => replica.get_many(ids).await?,
        };
        Ok(users
            .into_iter()
            .map(|(id, u)| (id, u.display_name))
            .collect())
    }

    /// Whether the replica holds a tombstone for `user_id` (the account was deleted).
    pub(crate) async fn is_deleted(&self, user_id: &str) -> Result<bool, StorageError> {
        let state = match &self.users {
            Users::Memory(replica) => replica.state(user_id).await?,
            Users::Pg { replica, .. } => replica.state(user_id).await?,
        };
        Ok(matches!(state, Some(UserState::Deleted(_))))
    }

    /// Stores a new comment.
    pub(crate) async fn insert(&self, comment: &Comment) -> Result<(), StorageError> {
        match &self.comments {
            Comments::Memory(all) => lock(all).push(comment.clone()),
            Comments::Pg { pool, table } => {
                sqlx::query(&format!(
                    "INSERT INTO {table} (id, post_id, author_id, text) VALUES ($1, $2, $3, $4)"
                ))
                .bind(&comment.id)
                .bind(&comment.post_id)
                .bind(&comment.author_id)
                .bind(&comment.text)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// The comments of a post, oldest first.
    pub(crate) async fn list(&self, post_id: &str) -> Result<Vec<Comment>, StorageError> {
        match &self.comments {
            Comments::Memory(all) => Ok(lock(all)
                .iter()
                .filter(|c| c.post_id == post_id)
                .cloned()
                .collect()),
            Comments::Pg { pool, table } => {
                let rows = sqlx::query(&format!(
                    "SELECT id, post_id, author_id, text FROM {table} \
                     WHERE post_id = $1 ORDER BY created_at, id"
                ))
                .bind(post_id)
                .fetch_all(pool)
                .await?;
                rows.iter().map(row_to_comment).collect()
            }
        }
    }

    /// One comment.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Comment>, StorageError> {
        match &self.comments {
            Comments::Memory(all) => Ok(lock(all).iter().find(|c| c.id == id).cloned()),
            Comments::Pg { pool, table } => {
                let row = sqlx::query(&format!(
                    "SELECT id, post_id, author_id, text FROM {table} WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(pool)
                .await?;
                row.as_ref().map(row_to_comment).transpose()
            }
        }
    }

    /// Deletes a comment if it still belongs to `author_id`; whether it did.
    pub(crate) async fn delete(&self, id: &str, author_id: &str) -> Result<bool, StorageError> {
        match &self.comments {
            Comments::Memory(all) => {
                let mut all = lock(all);
                let before = all.len();
                all.retain(|c| !(c.id == id && c.author_id.as_deref() == Some(author_id)));
                Ok(all.len() < before)
            }
            Comments::Pg { pool, table } => {
                let done = sqlx::query(&format!(
                    "DELETE FROM {table} WHERE id = $1 AND author_id = $2"
                ))
                .bind(id)
                .bind(author_id)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    }
}

fn row_to_comment(row: &sqlx::postgres::PgRow) -> Result<Comment, StorageError> {
    Ok(Comment {
        id: row.try_get("id")?,
        post_id: row.try_get("post_id")?,
        author_id: row.try_get("author_id")?,
        text: row.try_get("text")?,
    })
}

/// A router handler applying a user event to the PostgreSQL replica behind the inbox.
///
/// `PgReplicaStore` opens its own transaction (it takes no caller
/// transaction), so the replica's effects commit just before the inbox
/// record. If the process dies between the two commits, the redelivered
/// event reaches the replica again and its version gate makes it a no-op.
fn inbox_handler<E>(
    replica: UserReplica<PgReplicaStore>,
) -> impl for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
+ Clone
+ Send
+ Sync
+ 'static
where
    E: Into<UserEvent> + Send + 'static,
{
    move |_tx: &mut InboxTransaction, envelope: Envelope<E>, _ctx: EventContext| {
        let replica = replica.clone();
        Box::pin(async move { apply(&replica, envelope).await }) as TxFuture<'_>
    }
}

async fn apply<E: Into<UserEvent>>(
    replica: &UserReplica<PgReplicaStore>,
    envelope: Envelope<E>,
) -> Result<(), HandlerError> {
    let (attributes, data) = envelope.into_parts();
    let event: UserEvent = data.into();
    if let Some(subject) = attributes.subject.as_deref()
        && subject != event.user_id()
    {
        return Err(HandlerError::permanent(format!(
            "the subject {subject:?} is not the event's user id {:?}",
            event.user_id()
        )));
    }
    match replica.apply(event).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Err(HandlerError::transient(e)),
        Err(e) => Err(HandlerError::permanent(e)),
    }
}
