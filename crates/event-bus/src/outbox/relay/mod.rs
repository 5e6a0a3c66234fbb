//! [`OutboxRelay`]: publishes committed outbox rows and marks them sent.
//!
//! # Design
//!
//! The relay runs rounds in a loop (`run.rs`). A round (`round.rs`):
//!
//! 1. **claims** up to `batch_size` ready rows under the table's claim lock
//!    (`claim.rs`), oldest first, skipping subjects whose earlier rows are
//!    in flight (leased by a relay) or waiting for a retry. Each claimed row
//!    gets a lease in the relay's name; a relay that dies leaves its leases
//!    to expire, and the rows are claimed again.
//! 2. **publishes**: rows that failed before go one by one first (they are
//!    the heads of their subjects); the fresh rows then go in one
//!    [`Publisher::publish_all`](crate::Publisher::publish_all). When that
//!    batch is refused, its rows go one by one, so that one bad row parks
//!    or backs off alone; once a row of a subject fails, the later rows of
//!    that subject are released untried, keeping the subject's order.
//! 3. **settles** (`settle.rs`): marks rows sent, backs failed rows off
//!    (exponential backoff with jitter, per row), parks rows that can never
//!    be published with the reason, and hands released rows back.
//!
//! Between rounds the loop waits for a `NOTIFY` from the outbox trigger or
//! the poll interval, whichever comes first, and now and then refreshes the
//! backlog gauges and prunes sent rows (`housekeeping.rs`). The SQL of all
//! this is in `sql.rs`, built once per relay; the settings and their
//! defaults in `config.rs`; the metrics a round records in `metrics.rs`; the
//! handle of a started relay in `handle.rs`.

mod claim;
mod config;
mod handle;
mod housekeeping;
mod metrics;
mod pipeline;
mod publish;
mod round;
mod run;
mod settle;
mod sql;

pub use self::{config::OutboxRelay, handle::OutboxRelayHandle, round::BatchReport};
