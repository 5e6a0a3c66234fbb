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
//!   commit order. A subject's rows are in one relay's hands at a time and
//!   reach the broker in row order (many may await their confirms at once);
//!   a row is marked sent only after every earlier row of its subject, and
//!   while a row waits for a retry the later rows of its subject wait too.
//!   Events without a subject have no order.
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
//!   [`Outbox::dead_letter_queue`].
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

mod backlog;
mod enqueue;
mod error;
mod metrics;
pub(crate) mod migrate;
mod park;
mod prune;
mod relay;
pub(crate) mod schema;
mod table;

pub use self::{
    backlog::Backlog,
    enqueue::Outbox,
    error::OutboxError,
    metrics::{
        METRIC_BATCH_DURATION, METRIC_OLDEST_PENDING_AGE, METRIC_PARKED, METRIC_PARKED_TOTAL,
        METRIC_PENDING, METRIC_PRUNED, METRIC_PUBLISH_FAILURES, METRIC_PUBLISHED,
    },
    park::OutboxDeadLetters,
    relay::{BatchReport, OutboxRelay, OutboxRelayHandle},
    table::{MAX_IDENTIFIER_LEN, TableName, TableNameError},
};
