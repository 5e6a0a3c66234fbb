//! The relay's metrics: what a round records, and the helpers that label
//! every series with the table.

use std::time::Duration;

use super::round::BatchReport;
use crate::outbox::metrics::{
    METRIC_BATCH_DURATION, METRIC_PARKED_TOTAL, METRIC_PUBLISH_FAILURES, METRIC_PUBLISHED,
};

/// Records a round that claimed rows: its duration and what became of them.
pub(super) fn record_batch(table: &str, report: &BatchReport, elapsed: Duration) {
    metrics::histogram!(METRIC_BATCH_DURATION, "table" => table.to_owned())
        .record(elapsed.as_secs_f64());
    counter(METRIC_PUBLISHED, table, report.published);
    counter(METRIC_PUBLISH_FAILURES, table, report.failed);
    counter(METRIC_PARKED_TOTAL, table, report.parked);
}

/// Adds `n` to the table's counter `name`; nothing when `n` is zero.
pub(super) fn counter(name: &'static str, table: &str, n: usize) {
    if n > 0 {
        metrics::counter!(name, "table" => table.to_owned()).increment(n as u64);
    }
}

/// Sets the table's gauge `name`.
pub(super) fn gauge(name: &'static str, table: &str, value: f64) {
    metrics::gauge!(name, "table" => table.to_owned()).set(value);
}
