//! The outbox's metric names (see the [module docs](crate::outbox#metrics)).

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
