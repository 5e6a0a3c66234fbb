//! [`OutboxRelay`]: publishes committed outbox rows and marks them sent.
//!
//! # Design
//!
//! A [started](OutboxRelay::start) relay is a pipeline (`run.rs`): claims,
//! publishes and marks overlap, so that the relay is bound by the broker's
//! confirms rather than by its own database round trips.
//!
//! 1. **Claim** (`claim.rs`, `sql.rs`): up to
//!    [`batch_size`](OutboxRelay::batch_size) ready rows, oldest first,
//!    under the table's claim lock, each leased in the relay's name. A
//!    subject whose earlier row is leased by *another* relay or backing off
//!    is skipped; the relay's own leases do not hold a subject back, so one
//!    relay can have many rows of a subject in flight. A new claim is issued
//!    as soon as the last one returned a full batch (or a `NOTIFY` or the
//!    poll interval says rows may be ready) and fewer than
//!    [`max_in_flight`](OutboxRelay::max_in_flight) rows are held.
//! 2. **Publish** (`publish.rs`): each claim's rows go out at once, without
//!    waiting for earlier claims' confirms: fresh rows in one
//!    [`Publisher::publish_all`](crate::Publisher::publish_all), rows that
//!    failed before one by one first, and a refused batch one by one so that
//!    one bad row parks or backs off alone.
//! 3. **Settle** (`pipeline.rs`, `settle.rs`): outcomes are written as they
//!    come, one settle at a time, each writing everything ready in one
//!    set-based statement per kind (`seq = ANY($1)`, `UPDATE ... FROM
//!    unnest`).
//!
//! **Per-subject order across the pipeline.** Rows of a subject are handed
//! to the publisher in row (commit) order by one relay at a time; a later
//! row may be published before an earlier row's confirm arrives, as within
//! one `publish_all`. The broker receives them in that order because the
//! publisher keeps the order in which publishes start (RabbitMQ: one
//! confirm channel; the in-memory bus: publishes that wait for room keep their
//! order). What
//! the relay adds is the *prefix rule*: a row is marked sent only once every
//! earlier row of its subject that the relay holds has its outcome, and once
//! a row fails, the subject's later rows the relay holds are released
//! (published again after the failed row) and the subject waits until the
//! failure is written, when the database holds it back (the failed row
//! backs off as the subject's first row). So after a failure a consumer may
//! see a later event early and then again in order, never an earlier event
//! only after a later one with nothing after it.
//!
//! **Crashes.** A relay that dies leaves its leases to expire: every row it
//! had not marked is published again, which is exactly the rows whose
//! confirms it had not seen (or whose earlier rows' confirms it had not
//! seen), plus any whose mark was in flight.
//!
//! Between bursts the loop waits for a `NOTIFY` from the outbox trigger
//! (forwarded by a listener that runs beside the pipeline) or the poll
//! interval. There is no high-water mark: every claim looks from the oldest
//! unsent row, so a transaction that commits after a later-numbered one is
//! seen at the next wake-up. The chores, backlog gauges and pruning sent
//! rows in chunks of 1,000 (`housekeeping.rs`), run beside the pipeline,
//! never between its steps. [`publish_pending`](OutboxRelay::publish_pending)
//! runs one claim, publish and settle by hand. The settings are in
//! `config.rs`, the metrics a batch records in `metrics.rs`, the handle of a
//! started relay in `handle.rs`.

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
