//! The run loop's periodic chores: refreshing the backlog gauges and pruning
//! sent rows.

use super::{
    config::OutboxRelay,
    metrics::{counter, gauge},
};
use crate::outbox::metrics::{
    METRIC_OLDEST_PENDING_AGE, METRIC_PARKED, METRIC_PENDING, METRIC_PRUNED,
};

impl OutboxRelay {
    /// Reads the backlog into the gauges; a failure is logged, not returned.
    pub(super) async fn report_backlog(&self, label: &str) {
        match self.outbox.backlog(&self.pool).await {
            Ok(backlog) => {
                gauge(METRIC_PENDING, label, backlog.pending as f64);
                gauge(METRIC_PARKED, label, backlog.parked as f64);
                let age = backlog.oldest_pending_age.unwrap_or_default();
                gauge(METRIC_OLDEST_PENDING_AGE, label, age.as_secs_f64());
            }
            Err(error) => {
                tracing::warn!(%error, table = %label, "could not read the outbox backlog");
            }
        }
    }

    /// Prunes sent rows past the retention; a failure is logged, not returned.
    pub(super) async fn prune(&self, label: &str) {
        match self.outbox.prune_sent(&self.pool, self.retention).await {
            Ok(pruned) => {
                counter(
                    METRIC_PRUNED,
                    label,
                    usize::try_from(pruned).unwrap_or(usize::MAX),
                );
                tracing::debug!(table = %label, pruned, "pruned sent outbox rows");
            }
            Err(error) => tracing::warn!(%error, table = %label, "could not prune the outbox"),
        }
    }
}
