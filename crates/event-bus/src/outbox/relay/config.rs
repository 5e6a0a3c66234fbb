//! [`OutboxRelay`]'s settings: what a user sets, the defaults, and the checks
//! made before the relay starts.

use std::{fmt, sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;

use super::sql::RelaySql;
use crate::{
    Codec, Publisher,
    outbox::{
        enqueue::{Inner, Outbox},
        error::OutboxError,
    },
};

/// Publishes committed outbox rows through a [`Publisher`].
///
/// Each round claims up to [`batch_size`](OutboxRelay::batch_size) rows
/// (oldest first, skipping subjects whose earlier rows are still in flight or
/// waiting for a retry), publishes them with one
/// [`Publisher::publish_all`], and marks them sent. When the batch publish
/// fails, the rows are published one by one, so that one bad row parks or
/// backs off alone and other subjects go on. Between rounds the relay waits
/// for a `NOTIFY` from the outbox trigger or the poll interval, whichever
/// comes first.
///
/// Run one relay per process; any number of processes may relay from the
/// same table. See the [module docs](crate::outbox) for the guarantees.
#[must_use]
pub struct OutboxRelay {
    pub(super) outbox: Arc<Inner>,
    pub(super) pool: PgPool,
    pub(super) publisher: Arc<dyn Publisher>,
    pub(super) owner: String,
    pub(super) batch_size: u32,
    pub(super) max_in_flight: usize,
    pub(super) poll_interval: Duration,
    pub(super) lease: Duration,
    pub(super) publish_timeout: Duration,
    pub(super) min_backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) park_after: Option<u32>,
    pub(super) retention: Duration,
    pub(super) prune_interval: Duration,
    pub(super) metrics_interval: Duration,
    pub(super) listen: bool,
    pub(super) sql: RelaySql,
}

impl fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("table", &self.outbox.table)
            .field("owner", &self.owner)
            .field("publisher", &self.publisher)
            .field("batch_size", &self.batch_size)
            .field("max_in_flight", &self.max_in_flight)
            .field("poll_interval", &self.poll_interval)
            .field("lease", &self.lease)
            .field("publish_timeout", &self.publish_timeout)
            .field("park_after", &self.park_after)
            .field("retention", &self.retention)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay for `outbox`, reading with `pool`, publishing with `publisher`.
    ///
    /// Defaults: claims of up to 250 rows, 1,000 rows in flight, poll every second, leases of 60 s, publish
    /// timeout 20 s, backoff from 100 ms doubling to 30 s with jitter, sent
    /// rows kept 7 days and pruned hourly, backlog metrics every 10 s,
    /// `LISTEN` on.
    pub fn new<C: Codec>(outbox: &Outbox<C>, pool: PgPool, publisher: Arc<dyn Publisher>) -> Self {
        let inner = Arc::clone(outbox.inner());
        let sql = RelaySql::new(&inner.table.qualified());
        Self {
            outbox: inner,
            pool,
            publisher,
            owner: format!("relay-{}", uuid::Uuid::new_v4()),
            batch_size: 250,
            max_in_flight: 1_000,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            publish_timeout: Duration::from_secs(20),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            park_after: None,
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
            metrics_interval: Duration::from_secs(10),
            listen: true,
            sql,
        }
    }

    /// The name this relay writes into the rows it claims (default
    /// `relay-<uuid>`). Each running relay needs its own: a relay does not
    /// hold a subject back for rows leased under its own name.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The most rows one claim takes (default 250, at least 1): a
    /// [`publish_pending`](OutboxRelay::publish_pending) round's batch.
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The most rows a [started](OutboxRelay::start) relay holds at once,
    /// claimed and not yet marked (default 1,000, at least 1): the window of
    /// publishes awaiting their confirm, which bounds the relay's
    /// throughput at about `max_in_flight / confirm latency`.
    pub fn max_in_flight(mut self, rows: usize) -> Self {
        self.max_in_flight = rows.max(1);
        self
    }

    /// How long an idle relay waits before looking again without a `NOTIFY` (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a claim lasts (default 60 s). A relay that dies holding a
    /// claim delays its rows by at most this long; then another relay
    /// publishes them again. Must exceed the publish timeout.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long one publish (or batch publish) may take before it counts as
    /// failed (default 20 s).
    pub fn publish_timeout(mut self, limit: Duration) -> Self {
        self.publish_timeout = limit;
        self
    }

    /// The delay before the first retry of a failed row and the longest delay
    /// (defaults 100 ms and 30 s; doubling, with jitter).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Parks a row instead of retrying it once its publish has failed
    /// `attempts` times and the broker refused the last one (a `basic.nack`,
    /// say a queue over its length limit that rejects publishes), with the
    /// reason. Default: refused rows are retried, with backoff, without
    /// limit. A broker that is out of reach never parks a row, whatever the
    /// setting: the relay waits for it.
    pub fn park_after(mut self, attempts: u32) -> Self {
        self.park_after = Some(attempts.max(1));
        self
    }

    /// How long sent rows are kept before pruning (default 7 days).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How often sent rows are pruned (default hourly).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// How often the backlog gauges are refreshed (default 10 s).
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Whether to `LISTEN` for the outbox trigger's notifications (default
    /// `true`); without it the relay only polls.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Refuses settings the relay cannot run with.
    pub(super) fn validate(&self) -> Result<(), OutboxError> {
        if self.lease <= self.publish_timeout {
            return Err(OutboxError::InvalidConfig(format!(
                "the lease ({:?}) must be longer than the publish timeout ({:?})",
                self.lease, self.publish_timeout
            )));
        }
        if self.poll_interval.is_zero() {
            return Err(OutboxError::InvalidConfig(
                "the poll interval is zero".to_owned(),
            ));
        }
        if self.owner.is_empty() {
            return Err(OutboxError::InvalidConfig(
                "the owner name is empty".to_owned(),
            ));
        }
        Ok(())
    }

    /// The delay before retry number `retry` (0-based) of a failed row or round.
    pub(super) fn backoff_delay(&self, retry: usize) -> Duration {
        ExponentialBuilder::new()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(retry)
            .unwrap_or(self.max_backoff)
    }
}
