//! One round: claim a batch, publish it, settle the outcome.
//!
//! Fresh rows go out in one [`Publisher::publish_all`](crate::Publisher::publish_all);
//! rows that failed before, and a batch the broker refused, go one by one so
//! that one bad row parks or backs off alone and other subjects go on.

use std::{collections::HashSet, future::Future, time::Instant};

use tracing::Instrument as _;

use super::{
    claim::{Claimed, decode},
    config::OutboxRelay,
    metrics::record_batch,
};
use crate::{BusError, RawEvent, outbox::error::OutboxError};

/// What one relay round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows published and marked sent.
    pub published: usize,
    /// Rows whose publish failed; they back off and are retried.
    pub failed: usize,
    /// Rows parked.
    pub parked: usize,
    /// Rows handed back untried (behind a failed row of the same subject).
    pub released: usize,
}

/// What happened to one row in a round.
pub(super) enum Outcome {
    /// Published and to be marked sent.
    Sent,
    /// The publish failed; the row backs off and is retried.
    Failed(String),
    /// The row can never be published as it is.
    Parked(String),
    /// Handed back untried.
    Released,
}

impl OutboxRelay {
    /// One round: claims a batch, publishes it, marks the outcome. Returns
    /// what happened; an empty report means nothing was ready.
    ///
    /// [`start`](OutboxRelay::start) calls this in a loop; call it directly
    /// to drive the relay by hand (in tests or a job runner).
    pub async fn publish_pending(&self) -> Result<BatchReport, OutboxError> {
        let label = self.outbox.table.label();
        let span = tracing::info_span!(
            "tessera.outbox.batch",
            table = %label,
            owner = %self.owner,
            claimed = tracing::field::Empty,
            published = tracing::field::Empty,
            failed = tracing::field::Empty,
            parked = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.round().instrument(span.clone()).await;
        if let Ok(report) = &result
            && report.claimed > 0
        {
            span.record("claimed", report.claimed);
            span.record("published", report.published);
            span.record("failed", report.failed);
            span.record("parked", report.parked);
            record_batch(&label, report, started.elapsed());
        }
        result
    }

    async fn round(&self) -> Result<BatchReport, OutboxError> {
        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(rows.len());
        let mut decoded = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            match decode(row) {
                Ok(event) => {
                    outcomes.push(None);
                    decoded.push((index, event));
                }
                Err(reason) => {
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "parking an outbox row");
                    outcomes.push(Some(Outcome::Parked(reason)));
                }
            }
        }
        // Rows that failed before are the heads of their subjects: they go
        // one by one first, so that one of them failing again cannot break a
        // batch whose earlier rows were already accepted.
        let mut blocked = HashSet::new();
        let (retried, fresh): (Vec<_>, Vec<_>) = decoded
            .into_iter()
            .partition(|(index, _)| rows[*index].attempts > 0);
        self.publish_one_by_one(&rows, retried, &mut blocked, &mut outcomes)
            .await;
        let fresh: Vec<_> = fresh
            .into_iter()
            .filter(|(index, _)| {
                let held = rows[*index]
                    .subject
                    .as_ref()
                    .is_some_and(|s| blocked.contains(s));
                if held {
                    outcomes[*index] = Some(Outcome::Released);
                }
                !held
            })
            .collect();
        if !fresh.is_empty() {
            let events = fresh.iter().map(|(_, event)| event.clone()).collect();
            match self.with_timeout(self.publisher.publish_all(events)).await {
                Ok(()) => {
                    for (index, _) in &fresh {
                        outcomes[*index] = Some(Outcome::Sent);
                    }
                }
                Err(error) if is_connection_error(&error) => {
                    // Nothing gets through; retrying row by row would only wait longer.
                    tracing::warn!(%error, rows = fresh.len(), "batch publish failed; backing off");
                    for (index, _) in &fresh {
                        outcomes[*index] = Some(Outcome::Failed(error.to_string()));
                    }
                }
                Err(error) => {
                    // The batch may have been accepted in part: rows before
                    // the bad one are published again (at least once).
                    tracing::debug!(%error, "batch publish failed; publishing one by one");
                    self.publish_one_by_one(&rows, fresh, &mut blocked, &mut outcomes)
                        .await;
                }
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Released))
            .collect();
        self.settle(&rows, &outcomes).await
    }

    /// Publishes in row order; after a failure, later rows of the same
    /// subject are released untried so the subject keeps its order. Once
    /// the broker is out of reach, the remaining rows fail without trying.
    async fn publish_one_by_one(
        &self,
        rows: &[Claimed],
        events: Vec<(usize, RawEvent)>,
        blocked: &mut HashSet<String>,
        outcomes: &mut [Option<Outcome>],
    ) {
        let mut unreachable: Option<String> = None;
        for (index, event) in events {
            let row = &rows[index];
            if let Some(subject) = &row.subject
                && blocked.contains(subject)
            {
                outcomes[index] = Some(Outcome::Released);
                continue;
            }
            let outcome = if let Some(error) = &unreachable {
                Outcome::Failed(error.clone())
            } else {
                match self.with_timeout(self.publisher.publish(event)).await {
                    Ok(()) => Outcome::Sent,
                    Err(error) if is_permanent(&error) => Outcome::Parked(error.to_string()),
                    Err(error) if self.gives_up(row, &error) => Outcome::Parked(format!(
                        "gave up after {} attempts: {error}",
                        row.attempts.saturating_add(1)
                    )),
                    Err(error) => {
                        if is_connection_error(&error) {
                            unreachable = Some(error.to_string());
                        }
                        Outcome::Failed(error.to_string())
                    }
                }
            };
            match &outcome {
                Outcome::Failed(reason) => {
                    if let Some(subject) = &row.subject {
                        blocked.insert(subject.clone());
                    }
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "outbox publish failed; retrying later");
                }
                Outcome::Parked(reason) => {
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "outbox publish refused; parking the row");
                }
                Outcome::Sent | Outcome::Released => {}
            }
            outcomes[index] = Some(outcome);
        }
    }

    /// Whether a refused publish was the row's last allowed attempt.
    fn gives_up(&self, row: &Claimed, error: &BusError) -> bool {
        !is_connection_error(error)
            && self
                .park_after
                .is_some_and(|limit| i64::from(row.attempts) + 1 >= i64::from(limit))
    }

    async fn with_timeout(
        &self,
        publish: impl Future<Output = Result<(), BusError>>,
    ) -> Result<(), BusError> {
        match tokio::time::timeout(self.publish_timeout, publish).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Connection(
                format!("publish timed out after {:?}", self.publish_timeout).into(),
            )),
        }
    }
}

/// Errors no retry can fix: the row is parked.
fn is_permanent(error: &BusError) -> bool {
    !matches!(
        error,
        BusError::Closed | BusError::Connection(_) | BusError::Rejected(_)
    )
}

/// Errors that say the broker is out of reach, not that an event is bad.
fn is_connection_error(error: &BusError) -> bool {
    matches!(error, BusError::Closed | BusError::Connection(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_broker_outages_and_rejections_are_retried() {
        assert!(!is_permanent(&BusError::Closed));
        assert!(!is_permanent(&BusError::Rejected("nack".into())));
        assert!(!is_permanent(&BusError::Connection("down".into())));
        assert!(is_permanent(&BusError::Unroutable("t".into())));
        assert!(is_connection_error(&BusError::Closed));
        assert!(!is_connection_error(&BusError::Rejected("nack".into())));
    }
}
