//! [`PgUserDirectory`]: users in PostgreSQL, events through the transactional outbox.
//!
//! Each change updates the user's row (bumping `version`) and enqueues the
//! matching event with [`Outbox::enqueue`] in the same transaction; the
//! [`OutboxRelay`](tessera_event_bus::outbox::OutboxRelay) publishes it
//! after the commit, in per-user order. Registration is
//! `INSERT ... ON CONFLICT (user_id) DO NOTHING`: of any number of
//! concurrent registrations of one user, exactly one inserts and enqueues.
//!
//! The `*_in` methods work inside the caller's transaction, for services
//! that change more than the user row at once.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::PgPool;
//! use tessera_event_bus::outbox::Outbox;
//! use tessera_user_sync::{Profile, producer::{UserDirectory, postgres::PgUserDirectory}};
//!
//! let pool = PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let outbox = Outbox::default();
//! outbox.migrate(&pool).await?;
//! let users = PgUserDirectory::new(pool.clone(), PgUserDirectory::default_table(), outbox, "/user-service");
//! users.migrate().await?;
//!
//! let mut tx = pool.begin().await?;
//! let profile = Profile { display_name: "Ada".into(), ..Profile::default() };
//! users.register_in(&mut tx, "u1", profile).await?;
//! sqlx::query("INSERT INTO audit (what) VALUES ('registered u1')").execute(&mut *tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use sqlx::{
    PgPool, Postgres, Row as _, Transaction,
    postgres::{PgArguments, PgRow},
    query::Query,
};
use tessera_event_bus::{
    Envelope, Event,
    outbox::{Outbox, TableName},
};
use time::OffsetDateTime;

use super::{
    directory::{Registration, UserDirectory, UserRecord, check_id},
    error::ProducerError,
};
use crate::{
    error::SnapshotError,
    events::{Profile, UserDeleted, UserProfileUpdated, UserRegistered, validate_common},
    snapshot::{SnapshotPage, SnapshotSource},
};

/// The migration for the default table `tessera.users`.
pub const DEFAULT_MIGRATION: &str = include_str!("../../migrations/0002_users.sql");

const COLUMNS: &str =
    "user_id, version, display_name, username, email, avatar_url, deleted_at, updated_at";

fn db(e: impl std::error::Error + Send + Sync + 'static) -> ProducerError {
    ProducerError::Database(Box::new(e))
}

/// A [`UserDirectory`] in a PostgreSQL table with a transactional outbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgUserDirectory {
    pool: PgPool,
    table: TableName,
    outbox: Outbox,
    source: String,
}

impl PgUserDirectory {
    /// A directory in `table`, enqueueing into `outbox` events with `source`
    /// (such as `/user-service`).
    pub fn new(pool: PgPool, table: TableName, outbox: Outbox, source: impl Into<String>) -> Self {
        Self {
            pool,
            table,
            outbox,
            source: source.into(),
        }
    }

    /// The default table, `tessera.users`.
    pub fn default_table() -> TableName {
        TableName::new("tessera", "users").unwrap_or_else(|_| unreachable!("valid name"))
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The SQL creating the schema and table (idempotent).
    pub fn migration_sql(&self) -> String {
        DEFAULT_MIGRATION
            .replace("\"tessera\".\"users\"", &self.table.qualified())
            .replace("\"tessera\"", &format!("\"{}\"", self.table.schema()))
    }

    /// Creates the schema and table if they do not exist.
    pub async fn migrate(&self) -> Result<(), ProducerError> {
        sqlx::raw_sql(&self.migration_sql())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn enqueue<E: Event>(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: E,
    ) -> Result<(), ProducerError> {
        self.outbox
            .enqueue(tx, &Envelope::new(self.source.clone(), event))
            .await
            .map_err(db)
    }

    /// [`UserDirectory::register`] inside `tx`.
    pub async fn register_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        user_id: &str,
        profile: Profile,
    ) -> Result<Registration, ProducerError> {
        check_id(user_id)?;
        let now = OffsetDateTime::now_utc();
        let sql = format!(
            "INSERT INTO {} (user_id, version, display_name, username, email, avatar_url, updated_at) \
             VALUES ($1, 1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO NOTHING RETURNING {COLUMNS}",
            self.table.qualified()
        );
        let inserted = bind_profile(sqlx::query(&sql).bind(user_id), &profile)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        match inserted {
            Some(row) => {
                let record = record_of(&row)?;
                self.enqueue(
                    tx,
                    UserRegistered::from_profile(user_id, 1, profile).occurred_at(now),
                )
                .await?;
                Ok(Registration::Created(record))
            }
            None => {
                // The conflicting insert has committed (ON CONFLICT waited for it).
                let existing = self
                    .get_in(tx, user_id)
                    .await?
                    .ok_or_else(|| ProducerError::NotFound(user_id.to_owned()))?;
                Ok(Registration::Existing(existing))
            }
        }
    }

    /// [`UserDirectory::update_profile`] inside `tx`.
    pub async fn update_profile_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        user_id: &str,
        profile: Profile,
    ) -> Result<UserRecord, ProducerError> {
        let now = OffsetDateTime::now_utc();
        let sql = format!(
            "UPDATE {} SET version = version + 1, display_name = $2, username = $3, email = $4, \
             avatar_url = $5, updated_at = $6 WHERE user_id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}",
            self.table.qualified()
        );
        let row = bind_profile(sqlx::query(&sql).bind(user_id), &profile)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        self.changed(tx, user_id, row, |version| {
            UserProfileUpdated::from_profile(user_id, version, profile).occurred_at(now)
        })
        .await
    }

    /// [`UserDirectory::delete`] inside `tx`.
    pub async fn delete_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        user_id: &str,
    ) -> Result<UserRecord, ProducerError> {
        let now = OffsetDateTime::now_utc();
        let sql = format!(
            "UPDATE {} SET version = version + 1, display_name = '', username = NULL, email = NULL, \
             avatar_url = NULL, deleted_at = $2, updated_at = $2 WHERE user_id = $1 AND deleted_at IS NULL \
             RETURNING {COLUMNS}",
            self.table.qualified()
        );
        let row = sqlx::query(&sql)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        self.changed(tx, user_id, row, |version| {
            UserDeleted::new(user_id, version).occurred_at(now)
        })
        .await
    }

    /// A user (deleted ones included) read inside `tx`.
    pub async fn get_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        user_id: &str,
    ) -> Result<Option<UserRecord>, ProducerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE user_id = $1",
            self.table.qualified()
        );
        let row = sqlx::query(&sql)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        row.as_ref().map(record_of).transpose()
    }

    /// The record an `UPDATE ... RETURNING` row describes, once the event
    /// `event(version)` for it is validated and enqueued; without a row, why
    /// nothing changed.
    async fn changed<E: Event>(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        user_id: &str,
        row: Option<PgRow>,
        event: impl FnOnce(u64) -> E,
    ) -> Result<UserRecord, ProducerError> {
        let Some(row) = row else {
            return Err(self.why_unchanged(tx, user_id).await);
        };
        let record = record_of(&row)?;
        // What the event's own `validate` checks: its user id and version.
        validate_common(user_id, record.version)?;
        self.enqueue(tx, event(record.version)).await?;
        Ok(record)
    }

    async fn why_unchanged(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        user_id: &str,
    ) -> ProducerError {
        match self.get_in(tx, user_id).await {
            Ok(Some(_)) => ProducerError::Deleted(user_id.to_owned()),
            Ok(None) => ProducerError::NotFound(user_id.to_owned()),
            Err(e) => e,
        }
    }
}

/// Binds a profile's columns, in the order `display_name, username, email, avatar_url`.
fn bind_profile<'q>(
    query: Query<'q, Postgres, PgArguments>,
    profile: &'q Profile,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(&profile.display_name)
        .bind(&profile.username)
        .bind(&profile.email)
        .bind(&profile.avatar_url)
}

fn record_of(row: &PgRow) -> Result<UserRecord, ProducerError> {
    let user_id: String = row.try_get("user_id").map_err(db)?;
    let version: i64 = row.try_get("version").map_err(db)?;
    let version = u64::try_from(version).map_err(|_| {
        ProducerError::Database(format!("user `{user_id}` has a negative version").into())
    })?;
    Ok(UserRecord {
        version,
        profile: Profile {
            display_name: row.try_get("display_name").map_err(db)?,
            username: row.try_get("username").map_err(db)?,
            email: row.try_get("email").map_err(db)?,
            avatar_url: row.try_get("avatar_url").map_err(db)?,
        },
        deleted_at: row.try_get("deleted_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
        user_id,
    })
}

#[async_trait]
impl UserDirectory for PgUserDirectory {
    async fn register(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<Registration, ProducerError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let registration = self.register_in(&mut tx, user_id, profile).await?;
        tx.commit().await.map_err(db)?;
        Ok(registration)
    }

    async fn get(&self, user_id: &str) -> Result<Option<UserRecord>, ProducerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE user_id = $1",
            self.table.qualified()
        );
        let row = sqlx::query(&sql)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(record_of).transpose()
    }

    async fn update_profile(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<UserRecord, ProducerError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let record = self.update_profile_in(&mut tx, user_id, profile).await?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn delete(&self, user_id: &str) -> Result<UserRecord, ProducerError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let record = self.delete_in(&mut tx, user_id).await?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }
}

#[async_trait]
impl SnapshotSource for PgUserDirectory {
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError> {
        let limit = i64::from(limit.max(1));
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE deleted_at IS NULL AND ($1::text IS NULL OR user_id > $1) \
             ORDER BY user_id LIMIT $2",
            self.table.qualified()
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| SnapshotError::Transport(Box::new(e)))?;
        let more = rows.len() as i64 > limit;
        let users = rows
            .iter()
            .take(limit as usize)
            .map(|r| record_of(r).map(|r| r.snapshot()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        let next = if more {
            users.last().map(|u| u.user_id.clone())
        } else {
            None
        };
        Ok(SnapshotPage::new(users, next))
    }
}
