//! Publishing one claim's rows and judging each row's outcome.
//!
//! Fresh rows go out in one [`Publisher::publish_all`]; rows that failed
//! before, and a batch the broker refused, go one by one so that one bad row
//! parks or backs off alone and other subjects go on. Once a row of a subject
//! fails, the later rows of that subject in the batch are not tried.

use std::{collections::HashSet, sync::Arc, time::Duration};

use super::round::Outcome;
use crate::{BusError, Publisher, RawEvent};

/// A claimed row, decoded and ready to publish.
#[derive(Debug)]
pub(super) struct ToPublish {
    pub(super) seq: i64,
    pub(super) subject: Option<String>,
    pub(super) attempts: i32,
    pub(super) event: RawEvent,
}

/// What publishing a batch did.
#[derive(Debug, Default)]
pub(super) struct Published {
    /// Each row's outcome; `Released` for rows not tried.
    pub(super) outcomes: Vec<(i64, Outcome)>,
    /// The broker was out of reach.
    pub(super) unreachable: bool,
}

/// What a batch needs to publish: owned, so batches run as `'static` futures.
#[derive(Debug, Clone)]
pub(super) struct Publishing {
    pub(super) publisher: Arc<dyn Publisher>,
    pub(super) timeout: Duration,
    pub(super) park_after: Option<u32>,
}

impl Publishing {
    /// Publishes `rows` (in seq order) and says what became of each.
    pub(super) async fn batch(self, rows: Vec<ToPublish>) -> Published {
        let mut done = Published::default();
        // Rows that failed before are the heads of their subjects: they go
        // one by one first, so that one of them failing again cannot break a
        // batch whose earlier rows were already accepted.
        let mut blocked = HashSet::new();
        let (retried, fresh): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.attempts > 0);
        self.one_by_one(retried, &mut blocked, &mut done).await;
        let (held, fresh): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|r| r.subject.as_ref().is_some_and(|s| blocked.contains(s)));
        done.outcomes
            .extend(held.iter().map(|r| (r.seq, Outcome::Released)));
        if fresh.is_empty() {
            return done;
        }
        let events = fresh.iter().map(|r| r.event.clone()).collect();
        match self.within_timeout(self.publish_all(events)).await {
            Ok(()) => {
                done.outcomes
                    .extend(fresh.iter().map(|r| (r.seq, Outcome::Sent)));
            }
            Err(error) if is_connection_error(&error) => {
                // Nothing gets through; retrying row by row would only wait longer.
                tracing::warn!(%error, rows = fresh.len(), "batch publish failed; backing off");
                done.unreachable = true;
                let reason = error.to_string();
                done.outcomes.extend(
                    fresh
                        .iter()
                        .map(|r| (r.seq, Outcome::Failed(reason.clone()))),
                );
            }
            Err(error) => {
                // The batch may have been accepted in part: rows before the
                // bad one are published again (at least once).
                tracing::debug!(%error, "batch publish failed; publishing one by one");
                self.one_by_one(fresh, &mut blocked, &mut done).await;
            }
        }
        done
    }

    /// Publishes in row order; after a failure, later rows of the same
    /// subject are not tried so the subject keeps its order. Once the
    /// broker is out of reach, the remaining rows fail without trying.
    async fn one_by_one(
        &self,
        rows: Vec<ToPublish>,
        blocked: &mut HashSet<String>,
        done: &mut Published,
    ) {
        for row in rows {
            if let Some(subject) = &row.subject
                && blocked.contains(subject)
            {
                done.outcomes.push((row.seq, Outcome::Released));
                continue;
            }
            let result = if done.unreachable {
                Err(BusError::Connection("the broker is out of reach".into()))
            } else {
                self.within_timeout(self.publish(row.event)).await
            };
            if let Err(error) = &result
                && is_connection_error(error)
            {
                done.unreachable = true;
            }
            let outcome = self.outcome(row.attempts, result);
            match &outcome {
                Outcome::Failed(reason) => {
                    if let Some(subject) = row.subject {
                        blocked.insert(subject);
                    }
                    tracing::warn!(seq = row.seq, %reason, "outbox publish failed; retrying later");
                }
                Outcome::Parked(reason) => {
                    tracing::warn!(seq = row.seq, %reason, "outbox publish refused; parking the row");
                }
                Outcome::Sent | Outcome::Released => {}
            }
            done.outcomes.push((row.seq, outcome));
        }
    }

    /// What becomes of a row after `attempts` earlier failures and this publish.
    fn outcome(&self, attempts: i32, result: Result<(), BusError>) -> Outcome {
        match result {
            Ok(()) => Outcome::Sent,
            Err(error) if is_permanent(&error) => Outcome::Parked(error.to_string()),
            Err(error) if self.gives_up(attempts, &error) => Outcome::Parked(format!(
                "gave up after {} attempts: {error}",
                attempts.saturating_add(1)
            )),
            Err(error) => Outcome::Failed(error.to_string()),
        }
    }

    /// Whether a refused publish was the row's last allowed attempt.
    fn gives_up(&self, attempts: i32, error: &BusError) -> bool {
        !is_connection_error(error)
            && self
                .park_after
                .is_some_and(|limit| i64::from(attempts) + 1 >= i64::from(limit))
    }

    /// Publishes one row's event (in a `publish` span continuing the row's
    /// trace, with the `otel` feature).
    async fn publish(&self, event: RawEvent) -> Result<(), BusError> {
        #[cfg(feature = "otel")]
        return crate::otel::publish::publish(
            &*self.publisher,
            event,
            crate::otel::publish::Parent::Event,
        )
        .await;
        #[cfg(not(feature = "otel"))]
        self.publisher.publish(event).await
    }

    /// Publishes rows' events at once (each in its `publish` span, with the `otel` feature).
    async fn publish_all(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        #[cfg(feature = "otel")]
        return crate::otel::publish::publish_all(
            &*self.publisher,
            events,
            crate::otel::publish::Parent::Event,
        )
        .await;
        #[cfg(not(feature = "otel"))]
        self.publisher.publish_all(events).await
    }

    async fn within_timeout(
        &self,
        publish: impl Future<Output = Result<(), BusError>>,
    ) -> Result<(), BusError> {
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Connection(
                format!("publish timed out after {:?}", self.timeout).into(),
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
