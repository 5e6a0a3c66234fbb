//! [`PgReplicaStore`]: the replica in a PostgreSQL table (feature `postgres`).
//!
//! One row per user: live, or a tombstone (`deleted = true`, profile columns
//! cleared). A batch of changes is applied in **one transaction** with one
//! set-based statement for the upserts and one for the deletions, each doing
//! the version gate in its `ON CONFLICT ... WHERE` clause, so concurrent
//! writers (several consumer instances) stay correct without a read-modify-
//! write race. Hooks run in that transaction, after the statements, before
//! the commit: the Comment service's `on_deleted` hook anonymises the user's
//! comments atomically with the tombstone, and a failing hook rolls both back.
//!
//! Queries are built at run time (no compile-time checked macros), with the
//! schema and table names validated by [`TableName`] and always quoted.
//! [`PgReplicaStore::migrate`] creates the table (idempotent); the same SQL
//! for the default names (`tessera.user_replica`) ships as
//! `migrations/0001_user_replica.sql` for teams running their own migrations.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::PgPool;
//! use tessera_user_sync::{UserReplica, store::{DeletedUser, postgres::{PgReplicaStore, PgTransaction}}};
//!
//! let pool = PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let store = PgReplicaStore::new(pool, PgReplicaStore::default_table());
//! store.migrate().await?;
//! let replica = UserReplica::builder("comment-service", store)
//!     .on_deleted(|tx: &mut PgTransaction, user: &DeletedUser| {
//!         Box::pin(async move {
//!             sqlx::query("UPDATE comments SET author_id = NULL, author_name = 'deleted user' WHERE author_id = $1")
//!                 .bind(&user.user_id)
//!                 .execute(&mut **tx)
//!                 .await?;
//!             Ok(())
//!         })
//!     })
//!     .build();
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Row as _, Transaction, postgres::PgRow};
pub use tessera_event_bus::outbox::TableName;
use time::OffsetDateTime;

use super::{
    change::{ApplyReport, Change, Outcome},
    hooks::Hooks,
    replica_store::ReplicaStore,
    user::{DeletedUser, ReplicatedUser, UserState},
};
use crate::error::{ApplyError, StoreError};

/// The transaction PostgreSQL hooks receive.
pub type PgTransaction = Transaction<'static, Postgres>;

/// The migration for the default table `tessera.user_replica`.
pub const DEFAULT_MIGRATION: &str = include_str!("../../migrations/0001_user_replica.sql");

/// A [`ReplicaStore`] in a PostgreSQL table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgReplicaStore {
    pool: PgPool,
    table: TableName,
    sql: std::sync::Arc<Sql>,
}

#[derive(Debug)]
struct Sql {
    upsert: String,
    delete: String,
    get: String,
    get_many: String,
    state: String,
    live_before: String,
    prune: String,
}

const COLUMNS: &str =
    "user_id, version, deleted, display_name, username, email, avatar_url, updated_at";

impl Sql {
    fn new(table: &TableName) -> Self {
        let t = table.qualified();
        Self {
            upsert: format!(
                "INSERT INTO {t} AS r (user_id, version, display_name, username, email, avatar_url, updated_at, applied_at) \
                 SELECT x.*, clock_timestamp() FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]) \
                   AS x(user_id, version, display_name, username, email, avatar_url, updated_at) \
                 ON CONFLICT (user_id) DO UPDATE SET version = EXCLUDED.version, display_name = EXCLUDED.display_name, \
                   username = EXCLUDED.username, email = EXCLUDED.email, avatar_url = EXCLUDED.avatar_url, \
                   updated_at = EXCLUDED.updated_at, applied_at = EXCLUDED.applied_at \
                 WHERE NOT r.deleted AND r.version < EXCLUDED.version \
                 RETURNING r.user_id, (r.xmax = 0) AS inserted"
            ),
            delete: format!(
                "INSERT INTO {t} AS r (user_id, version, deleted, updated_at, applied_at) \
                 SELECT x.user_id, x.version, TRUE, x.updated_at, clock_timestamp() \
                   FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[]) AS x(user_id, version, updated_at) \
                 ON CONFLICT (user_id) DO UPDATE SET deleted = TRUE, version = GREATEST(r.version, EXCLUDED.version), \
                   display_name = NULL, username = NULL, email = NULL, avatar_url = NULL, \
                   updated_at = EXCLUDED.updated_at, applied_at = EXCLUDED.applied_at \
                 WHERE NOT r.deleted \
                 RETURNING r.user_id, r.version, r.updated_at"
            ),
            get: format!("SELECT {COLUMNS} FROM {t} WHERE user_id = $1 AND NOT deleted"),
            get_many: format!("SELECT {COLUMNS} FROM {t} WHERE user_id = ANY($1) AND NOT deleted"),
            state: format!("SELECT {COLUMNS} FROM {t} WHERE user_id = $1"),
            live_before: format!("SELECT user_id FROM {t} WHERE NOT deleted AND applied_at < $1"),
            prune: format!("DELETE FROM {t} WHERE deleted AND applied_at < $1"),
        }
    }
}

/// The reduced effect of a batch on one user.
enum Reduced {
    Upsert(ReplicatedUser),
    Delete(DeletedUser),
}

fn to_i64(version: u64) -> i64 {
    // Versions are validated to be at most 2^53 - 1 before they get here.
    i64::try_from(version).unwrap_or(i64::MAX)
}

impl PgReplicaStore {
    /// A store in `table` (create it with [`migrate`](Self::migrate)).
    pub fn new(pool: PgPool, table: TableName) -> Self {
        let sql = std::sync::Arc::new(Sql::new(&table));
        Self { pool, table, sql }
    }

    /// The default table, `tessera.user_replica`.
    pub fn default_table() -> TableName {
        TableName::new("tessera", "user_replica").unwrap_or_else(|_| unreachable!("valid name"))
    }

    /// The table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The SQL that creates the schema, table and index (idempotent).
    pub fn migration_sql(&self) -> String {
        DEFAULT_MIGRATION
            .replace("\"tessera\".\"user_replica\"", &self.table.qualified())
            .replace("\"user_replica_", &format!("\"{}_", self.table.table()))
            .replace("\"tessera\"", &format!("\"{}\"", self.table.schema()))
    }

    /// Creates the schema, table and index if they do not exist.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(&self.migration_sql())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn reduce(changes: Vec<Change>, report: &mut ApplyReport) -> Vec<Reduced> {
        let mut by_user: HashMap<String, Reduced> = HashMap::with_capacity(changes.len());
        for change in changes {
            let id = change.user_id().to_owned();
            match (by_user.remove(&id), change) {
                (None, Change::Upsert(u)) => {
                    by_user.insert(id, Reduced::Upsert(u));
                }
                (None, Change::Delete(d)) => {
                    by_user.insert(id, Reduced::Delete(d));
                }
                (Some(Reduced::Upsert(old)), Change::Upsert(new)) => {
                    report.ignored += 1;
                    let keep = if new.version > old.version { new } else { old };
                    by_user.insert(id, Reduced::Upsert(keep));
                }
                (Some(Reduced::Upsert(_)), Change::Delete(d)) => {
                    report.ignored += 1;
                    by_user.insert(id, Reduced::Delete(d));
                }
                (Some(Reduced::Delete(d)), _) => {
                    // Deletion is final: the first one stands, as in memory.
                    report.ignored += 1;
                    by_user.insert(id, Reduced::Delete(d));
                }
            }
        }
        let mut reduced: Vec<Reduced> = by_user.into_values().collect();
        // A stable lock order, so concurrent batches cannot deadlock.
        reduced.sort_by(|a, b| reduced_id(a).cmp(reduced_id(b)));
        reduced
    }

    async fn apply_in(
        &self,
        tx: &mut PgTransaction,
        changes: Vec<Change>,
        hooks: &Hooks<PgTransaction>,
    ) -> Result<ApplyReport, ApplyError> {
        let mut report = ApplyReport::default();
        let reduced = Self::reduce(changes, &mut report);
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for r in reduced {
            match r {
                Reduced::Upsert(u) => upserts.push(u),
                Reduced::Delete(d) => deletes.push(d),
            }
        }
        if !upserts.is_empty() {
            let rows = sqlx::query(&self.sql.upsert)
                .bind(
                    upserts
                        .iter()
                        .map(|u| u.user_id.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    upserts
                        .iter()
                        .map(|u| to_i64(u.version))
                        .collect::<Vec<_>>(),
                )
                .bind(
                    upserts
                        .iter()
                        .map(|u| u.display_name.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    upserts
                        .iter()
                        .map(|u| u.username.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(upserts.iter().map(|u| u.email.clone()).collect::<Vec<_>>())
                .bind(
                    upserts
                        .iter()
                        .map(|u| u.avatar_url.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(upserts.iter().map(|u| u.updated_at).collect::<Vec<_>>())
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            let mut changed = HashMap::with_capacity(rows.len());
            for row in rows {
                let id: String = row.try_get(0).map_err(StoreError::from)?;
                let inserted: bool = row.try_get(1).map_err(StoreError::from)?;
                changed.insert(id, inserted);
            }
            report.ignored += upserts.len() - changed.len();
            for user in &upserts {
                if let Some(&inserted) = changed.get(&user.user_id) {
                    report.record(if inserted {
                        Outcome::Inserted
                    } else {
                        Outcome::Updated
                    });
                    hooks.run_updated(tx, user).await?;
                }
            }
        }
        if !deletes.is_empty() {
            let rows = sqlx::query(&self.sql.delete)
                .bind(
                    deletes
                        .iter()
                        .map(|d| d.user_id.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    deletes
                        .iter()
                        .map(|d| to_i64(d.version))
                        .collect::<Vec<_>>(),
                )
                .bind(deletes.iter().map(|d| d.deleted_at).collect::<Vec<_>>())
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::from)?;
            report.ignored += deletes.len() - rows.len();
            let mut tombstones = Vec::with_capacity(rows.len());
            for row in rows {
                let user_id: String = row.try_get(0).map_err(StoreError::from)?;
                let version = version_of(&user_id, row.try_get(1).map_err(StoreError::from)?)?;
                let deleted_at: OffsetDateTime = row.try_get(2).map_err(StoreError::from)?;
                tombstones.push(DeletedUser::new(user_id, version, deleted_at));
            }
            tombstones.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            for deleted in &tombstones {
                report.record(Outcome::Deleted);
                hooks.run_deleted(tx, deleted).await?;
            }
        }
        Ok(report)
    }
}

fn reduced_id(r: &Reduced) -> &str {
    match r {
        Reduced::Upsert(u) => &u.user_id,
        Reduced::Delete(d) => &d.user_id,
    }
}

fn version_of(user_id: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        user_id: user_id.to_owned(),
        reason: format!("negative version {v}"),
    })
}

fn state_of(row: &PgRow) -> Result<UserState, StoreError> {
    let user_id: String = row.try_get("user_id")?;
    let version = version_of(&user_id, row.try_get("version")?)?;
    let deleted: bool = row.try_get("deleted")?;
    let updated_at: OffsetDateTime = row.try_get("updated_at")?;
    if deleted {
        return Ok(UserState::Deleted(DeletedUser::new(
            user_id, version, updated_at,
        )));
    }
    Ok(UserState::Live(ReplicatedUser {
        user_id,
        version,
        display_name: row.try_get("display_name")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        avatar_url: row.try_get("avatar_url")?,
        updated_at,
    }))
}

fn live_of(row: &PgRow) -> Result<Option<ReplicatedUser>, StoreError> {
    Ok(match state_of(row)? {
        UserState::Live(u) => Some(u),
        UserState::Deleted(_) => None,
    })
}

#[async_trait]
impl ReplicaStore for PgReplicaStore {
    type Tx = PgTransaction;

    async fn apply(
        &self,
        changes: Vec<Change>,
        hooks: &Hooks<PgTransaction>,
    ) -> Result<ApplyReport, ApplyError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // Dropping `tx` on an error rolls back the statements and the hooks' work.
        let report = self.apply_in(&mut tx, changes, hooks).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(report)
    }

    async fn get(&self, user_id: &str) -> Result<Option<ReplicatedUser>, StoreError> {
        let row = sqlx::query(&self.sql.get)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => live_of(&row)?,
            None => None,
        })
    }

    async fn get_many(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, ReplicatedUser>, StoreError> {
        let rows = sqlx::query(&self.sql.get_many)
            .bind(user_ids)
            .fetch_all(&self.pool)
            .await?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            if let Some(user) = live_of(row)? {
                found.insert(user.user_id.clone(), user);
            }
        }
        Ok(found)
    }

    async fn state(&self, user_id: &str) -> Result<Option<UserState>, StoreError> {
        let row = sqlx::query(&self.sql.state)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(state_of).transpose()
    }

    async fn live_ids_applied_before(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(&self.sql.live_before)
            .bind(before)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn prune_tombstones(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(sqlx::query(&self.sql.prune)
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
