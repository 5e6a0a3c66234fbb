//! The transactional outbox on PostgreSQL (feature `postgres`).
//!
//! A service that changes its database and publishes an event must do both or
//! neither. [`Outbox::enqueue`] writes the event into an outbox table inside
//! the caller's own transaction: a rolled-back transaction publishes nothing,
//! a committed one is published eventually, always. An [`OutboxRelay`] reads
//! committed rows and publishes them through any [`Publisher`](crate::Publisher), marking each
//! row sent only after the publish was confirmed.
//!
//! # Guarantees
//!
//! - **Per-subject order.** Events with the same `subject` (the user id, for
//!   example) leave in the order their transactions committed. Enqueue takes a
//!   transaction-scoped advisory lock per subject so that the row order is the
//!   commit order; the relay never publishes a row while an earlier row of its
//!   subject is unsent (claimed by a relay or waiting for a retry). Events
//!   without a subject have no order.
//! - **At least once.** A row is marked sent after the publish is confirmed.
//!   A relay that dies in between leaves its claim (a lease) to expire; the
//!   row is then published again. Consumers deduplicate with the
//!   [`inbox`](crate::inbox).
//! - **Several relays.** Relays claim batches under a short advisory lock and
//!   hold each claim as a lease, so replicas share the work and, in normal
//!   operation, no event is published twice.
//! - **Nothing blocks forever.** A failed publish backs off (exponentially,
//!   per row) and only holds back the later rows of the same subject. Rows
//!   that can never be published (attributes that are not a valid
//!   CloudEvent, data that is not the JSON its content type says, an event
//!   type nobody is bound to) are **parked** with the reason; see
//!   [`Outbox::parked`] and [`Outbox::requeue_parked`].
//!
//! # Tables
//!
//! [`Outbox::migrate`] creates the schema, the table, its indexes and a
//! trigger that sends a `NOTIFY` on the channel `schema.table` on insert
//! (relays `LISTEN` on it and poll as a fallback). It is idempotent. The same
//! SQL is available from [`Outbox::migration_sql`] and, for the default names
//! (`tessera.outbox`, `tessera.inbox`), as sqlx migration files in the
//! crate's `migrations/` directory.
//!
//! # Metrics
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `tessera_outbox_pending` | gauge: unsent rows (the backlog) | `table` |
//! | `tessera_outbox_oldest_pending_age_seconds` | gauge: age of the oldest unsent row | `table` |
//! | `tessera_outbox_parked` | gauge: parked rows | `table` |
//! | `tessera_outbox_published_total` | counter | `table` |
//! | `tessera_outbox_publish_failures_total` | counter | `table` |
//! | `tessera_outbox_parked_total` | counter | `table` |
//! | `tessera_outbox_pruned_total` | counter | `table` |
//! | `tessera_outbox_batch_duration_seconds` | histogram | `table` |
//!
//! Each batch runs in a `tessera.outbox.batch` tracing span.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use sqlx::PgPool;
//! use tessera_event_bus::Envelope;
//! use tessera_event_bus::memory::MemoryBus;
//! use tessera_event_bus::outbox::{Outbox, OutboxRelay};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct UserRegistered { user_id: String, email: String }
//! tessera_event_bus::event!(UserRegistered => "com.example.user.registered.v1", subject = user_id);
//!
//! let pool = PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let outbox = Outbox::default(); // the table tessera.outbox
//! outbox.migrate(&pool).await?;
//!
//! // The row change and the event commit together, or not at all.
//! let mut tx = pool.begin().await?;
//! sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
//!     .bind("u1").bind("a@example.com")
//!     .execute(&mut *tx).await?;
//! let event = UserRegistered { user_id: "u1".into(), email: "a@example.com".into() };
//! outbox.enqueue(&mut tx, &Envelope::new("/user-service", event)).await?;
//! tx.commit().await?;
//!
//! // In the background: publish committed rows.
//! let bus = MemoryBus::new();
//! let relay = OutboxRelay::new(&outbox, pool.clone(), Arc::new(bus.publisher()))
//!     .start()
//!     .await?;
//! // ... at shutdown:
//! relay.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod relay;
pub(crate) mod schema;
mod table;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use sqlx::{PgPool, Postgres, Row as _, Transaction};

pub use self::{
    relay::{BatchReport, OutboxRelay, OutboxRelayHandle},
    table::{MAX_IDENTIFIER_LEN, TableName, TableNameError},
};
use crate::{
    Codec, Envelope, Event, JsonCodec, RawEvent,
    error::{AttributeError, CodecError, WireError},
    wire,
};

/// Gauge: unsent, unparked rows.
pub const METRIC_PENDING: &str = "tessera_outbox_pending";
/// Gauge: seconds since the oldest unsent, unparked row was written.
pub const METRIC_OLDEST_PENDING_AGE: &str = "tessera_outbox_oldest_pending_age_seconds";
/// Gauge: parked rows.
pub const METRIC_PARKED: &str = "tessera_outbox_parked";
/// Counter: rows published and marked sent.
pub const METRIC_PUBLISHED: &str = "tessera_outbox_published_total";
/// Counter: publishes that failed and will be retried.
pub const METRIC_PUBLISH_FAILURES: &str = "tessera_outbox_publish_failures_total";
/// Counter: rows parked.
pub const METRIC_PARKED_TOTAL: &str = "tessera_outbox_parked_total";
/// Counter: sent rows pruned.
pub const METRIC_PRUNED: &str = "tessera_outbox_pruned_total";
/// Histogram: duration of one relay batch (claim, publish, mark).
pub const METRIC_BATCH_DURATION: &str = "tessera_outbox_batch_duration_seconds";

/// What went wrong writing to or relaying from the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The database refused or could not be reached.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The event's attributes break CloudEvents; nothing was written.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] AttributeError),
    /// The event's data could not be encoded; nothing was written.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The attributes could not be written as JSON; nothing was written.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A schema or table name is invalid.
    #[error(transparent)]
    TableName(#[from] TableNameError),
    /// A relay setting is invalid.
    #[error("invalid outbox relay configuration: {0}")]
    InvalidConfig(String),
    /// The relay task panicked or was cancelled.
    #[error("the outbox relay task ended abnormally: {0}")]
    Task(String),
}

/// Writes events into an outbox table inside the caller's transaction.
///
/// Cheap to clone. The codec (JSON by default) encodes typed envelopes.
#[derive(Debug)]
pub struct Outbox<C = JsonCodec> {
    inner: Arc<Inner>,
    codec: Arc<C>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) table: TableName,
    insert_sql: String,
}

impl<C> Clone for Outbox<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            codec: Arc::clone(&self.codec),
        }
    }
}

impl Default for Outbox<JsonCodec> {
    /// The table `tessera.outbox`, JSON data.
    fn default() -> Self {
        Self::new(TableName::new("tessera", "outbox").expect("valid default name"))
    }
}

impl Outbox<JsonCodec> {
    /// An outbox in `table`, encoding typed events as JSON.
    pub fn new(table: TableName) -> Self {
        Self::with_codec(table, JsonCodec)
    }
}

impl<C: Codec> Outbox<C> {
    /// An outbox in `table`, encoding typed events with `codec`.
    pub fn with_codec(table: TableName, codec: C) -> Self {
        Self {
            inner: Arc::new(Inner::new(table, true)),
            codec: Arc::new(codec),
        }
    }

    /// Whether enqueue serialises the transactions that enqueue events of the
    /// same subject (default `true`), so that rows of a subject are in commit
    /// order.
    ///
    /// Turn it off only when the application already serialises them (for
    /// example by locking the user's row first); otherwise two concurrent
    /// transactions may commit in the opposite order of their rows.
    #[must_use]
    pub fn lock_subjects(self, lock: bool) -> Self {
        Self {
            inner: Arc::new(Inner::new(self.inner.table.clone(), lock)),
            codec: self.codec,
        }
    }

    /// The outbox table.
    pub fn table(&self) -> &TableName {
        &self.inner.table
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Writes `envelope` into the outbox within `tx`; it is published once
    /// `tx` commits, and never if it rolls back.
    pub async fn enqueue<E: Event>(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        envelope: &Envelope<E>,
    ) -> Result<(), OutboxError> {
        let raw = envelope.encode(&*self.codec)?;
        self.enqueue_raw_all(tx, std::slice::from_ref(&raw)).await
    }

    /// Writes several envelopes in one statement; they keep their order.
    pub async fn enqueue_all<E: Event>(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        envelopes: &[Envelope<E>],
    ) -> Result<(), OutboxError> {
        let raws = envelopes
            .iter()
            .map(|e| e.encode(&*self.codec))
            .collect::<Result<Vec<_>, _>>()?;
        self.enqueue_raw_all(tx, &raws).await
    }

    /// Writes an already encoded event.
    pub async fn enqueue_raw(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event: &RawEvent,
    ) -> Result<(), OutboxError> {
        self.enqueue_raw_all(tx, std::slice::from_ref(event)).await
    }

    /// Writes already encoded events (of any types) in one statement; they
    /// keep their order. Every event is validated first: one invalid event
    /// writes nothing.
    pub async fn enqueue_raw_all(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[RawEvent],
    ) -> Result<(), OutboxError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(events.len());
        let mut types = Vec::with_capacity(events.len());
        let mut subjects = Vec::with_capacity(events.len());
        let mut attributes = Vec::with_capacity(events.len());
        let mut data = Vec::with_capacity(events.len());
        for event in events {
            event.attributes.validate()?;
            let header = RawEvent::new(event.attributes.clone(), Bytes::new());
            let json = wire::to_structured(&header)?;
            // to_structured writes UTF-8 JSON; a failure here would be a bug.
            let json =
                String::from_utf8(json).map_err(|e| WireError::NotJsonObject(e.to_string()))?;
            ids.push(event.attributes.id.clone());
            types.push(event.attributes.ty.clone());
            subjects.push(event.attributes.subject.clone());
            attributes.push(json);
            data.push(event.data.to_vec());
        }
        sqlx::query(&self.inner.insert_sql)
            .bind(ids)
            .bind(types)
            .bind(subjects)
            .bind(attributes)
            .bind(data)
            .bind(self.inner.table.lock_key())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The SQL that creates the outbox table, its indexes and its notify
    /// trigger; idempotent. Run it in one transaction.
    pub fn migration_sql(&self) -> String {
        schema::outbox_sql(&self.inner.table)
    }

    /// Creates the outbox table if needed (idempotent, safe to run from
    /// several processes at once).
    pub async fn migrate(&self, pool: &PgPool) -> Result<(), OutboxError> {
        run_migration(pool, &self.inner.table, &self.migration_sql()).await
    }

    /// Counts of unsent and parked rows, and the age of the oldest unsent one.
    pub async fn backlog(&self, pool: &PgPool) -> Result<Backlog, OutboxError> {
        self.inner.backlog(pool).await
    }

    /// Parked rows, oldest first, at most `limit`.
    pub async fn parked(&self, pool: &PgPool, limit: u32) -> Result<Vec<ParkedEvent>, OutboxError> {
        let sql = format!(
            "SELECT seq, event_id, event_type, subject, coalesce(park_reason, '') AS reason \
             FROM {} WHERE parked_at IS NOT NULL ORDER BY seq LIMIT $1",
            self.inner.table.qualified()
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ParkedEvent {
                    seq: row.try_get("seq")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    subject: row.try_get("subject")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Puts parked rows back in line (after fixing what parked them); returns
    /// how many were requeued.
    pub async fn requeue_parked(&self, pool: &PgPool, seqs: &[i64]) -> Result<u64, OutboxError> {
        let sql = format!(
            "UPDATE {} SET parked_at = NULL, park_reason = NULL, attempts = 0, \
             next_attempt_at = NULL, last_error = NULL \
             WHERE seq = ANY($1) AND parked_at IS NOT NULL",
            self.inner.table.qualified()
        );
        let done = sqlx::query(&sql).bind(seqs).execute(pool).await?;
        Ok(done.rows_affected())
    }

    /// Deletes sent rows older than `older_than`; returns how many.
    pub async fn prune_sent(
        &self,
        pool: &PgPool,
        older_than: Duration,
    ) -> Result<u64, OutboxError> {
        self.inner.prune_sent(pool, older_than).await
    }
}

impl Inner {
    fn new(table: TableName, lock_subjects: bool) -> Self {
        let qualified = table.qualified();
        // The advisory locks run (sorted, so batches cannot deadlock each
        // other) before any row gets its seq: the ORDER BY keeps the
        // subquery from being flattened, so all locks are taken first.
        let locks = if lock_subjects {
            "(SELECT count(pg_advisory_xact_lock(k)) FROM \
               (SELECT DISTINCT hashtextextended(s, $6) AS k FROM unnest($3::text[]) AS s \
                WHERE s IS NOT NULL ORDER BY 1) AS keys) AS locked, "
        } else {
            "(SELECT $6::bigint) AS unused, "
        };
        let insert_sql = format!(
            "INSERT INTO {qualified} (event_id, event_type, subject, attributes, data) \
             SELECT r.event_id, r.event_type, r.subject, r.attributes::jsonb, r.data FROM \
             {locks}\
             unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[]) \
               WITH ORDINALITY AS r(event_id, event_type, subject, attributes, data, ord) \
             ORDER BY r.ord"
        );
        Self { table, insert_sql }
    }

    pub(crate) async fn backlog(&self, pool: &PgPool) -> Result<Backlog, OutboxError> {
        let sql = format!(
            "SELECT \
               count(*) FILTER (WHERE parked_at IS NULL) AS pending, \
               count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked, \
               extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE parked_at IS NULL))::float8 AS age \
             FROM {} WHERE sent_at IS NULL",
            self.table.qualified()
        );
        let row = sqlx::query(&sql).fetch_one(pool).await?;
        let pending: i64 = row.try_get("pending")?;
        let parked: i64 = row.try_get("parked")?;
        let age: Option<f64> = row.try_get("age")?;
        Ok(Backlog {
            pending: u64::try_from(pending).unwrap_or_default(),
            parked: u64::try_from(parked).unwrap_or_default(),
            oldest_pending_age: age.map(|s| Duration::from_secs_f64(s.max(0.0))),
        })
    }

    pub(crate) async fn prune_sent(
        &self,
        pool: &PgPool,
        older_than: Duration,
    ) -> Result<u64, OutboxError> {
        let sql = format!(
            "DELETE FROM {t} WHERE seq IN (SELECT seq FROM {t} \
             WHERE sent_at IS NOT NULL AND sent_at < clock_timestamp() - make_interval(secs => $1) \
             LIMIT 10000 FOR UPDATE SKIP LOCKED)",
            t = self.table.qualified()
        );
        let mut total = 0;
        loop {
            // Chunks keep each delete's locks and WAL small.
            let done = sqlx::query(&sql)
                .bind(older_than.as_secs_f64())
                .execute(pool)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < 10_000 {
                break;
            }
        }
        Ok(total)
    }
}

/// Runs idempotent DDL in one transaction, serialised across processes.
pub(crate) async fn run_migration(
    pool: &PgPool,
    table: &TableName,
    sql: &str,
) -> Result<(), OutboxError> {
    let mut tx = pool.begin().await?;
    // Concurrent CREATE ... IF NOT EXISTS can still collide; take turns.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(table.lock_key())
        .execute(&mut *tx)
        .await?;
    // No arguments: the simple query protocol runs all statements at once.
    sqlx::Executor::execute(&mut *tx, sql).await?;
    tx.commit().await?;
    Ok(())
}

/// How much the relay has left to do.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backlog {
    /// Unsent rows that are not parked.
    pub pending: u64,
    /// Parked rows.
    pub parked: u64,
    /// How long ago the oldest pending row was written.
    pub oldest_pending_age: Option<Duration>,
}

/// A row that can never be published as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedEvent {
    /// The row's sequence number (for [`Outbox::requeue_parked`]).
    pub seq: i64,
    /// The event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The subject.
    pub subject: Option<String>,
    /// Why the row was parked.
    pub reason: String,
}
