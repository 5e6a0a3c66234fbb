//! One round by hand ([`OutboxRelay::publish_pending`]), and what the
//! pipelined loop shares with it: a batch's span and its record once
//! settled.

use std::sync::Arc;

use tracing::Instrument as _;

use super::{
    claim::decode,
    config::OutboxRelay,
    metrics::record_batch,
    pipeline::{FinishedClaim, Pipeline},
    publish::Publishing,
};
use crate::outbox::error::OutboxError;

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
    /// Rows handed back behind a failed row of the same subject: untried,
    /// or published already and to be published again after that row.
    pub released: usize,
}

/// What happened to one row.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Published and to be marked sent.
    Sent,
    /// The publish failed; the row backs off and is retried.
    Failed(String),
    /// The row can never be published as it is.
    Parked(String),
    /// Handed back behind a failed row of its subject (untried, or to be
    /// published again after it).
    Released,
}

impl OutboxRelay {
    /// One round: claims a batch, publishes it, marks the outcome. Returns
    /// what happened; an empty report means nothing was ready.
    ///
    /// [`start`](OutboxRelay::start) runs the same steps pipelined (claims,
    /// publishes and marks overlap); call this to drive the relay by hand
    /// (in tests or a job runner), one batch at a time.
    pub async fn publish_pending(&self) -> Result<BatchReport, OutboxError> {
        let mut pipeline = Pipeline::default();
        let claim = pipeline.start_claim();
        let span = self.batch_span();
        let rows = self.claim(self.batch_size).instrument(span.clone()).await?;
        if rows.is_empty() {
            return Ok(BatchReport::default());
        }
        let publish = pipeline.admit(claim, rows, span.clone(), decode);
        let published = self.publishing().batch(publish).instrument(span).await;
        for (seq, outcome) in published.outcomes {
            pipeline.complete(seq, outcome);
        }
        let ready = pipeline.take_ready(usize::MAX);
        self.settle(&ready).await?;
        let mut report = BatchReport::default();
        for finished in pipeline.settled(&ready) {
            report = self.record(&finished);
        }
        Ok(report)
    }

    /// The span of one batch; its counts are recorded once the batch is settled.
    pub(super) fn batch_span(&self) -> tracing::Span {
        tracing::info_span!(
            "tessera.outbox.batch",
            table = %self.outbox.table.label(),
            owner = %self.owner,
            claimed = tracing::field::Empty,
            published = tracing::field::Empty,
            failed = tracing::field::Empty,
            parked = tracing::field::Empty,
        )
    }

    /// Records a batch whose rows are all settled: its span, its metrics.
    pub(super) fn record(&self, finished: &FinishedClaim) -> BatchReport {
        let c = finished.counts;
        let report = BatchReport {
            claimed: finished.claimed,
            published: c.published,
            failed: c.failed,
            parked: c.parked,
            released: c.released,
        };
        let span = &finished.span;
        span.record("claimed", report.claimed);
        span.record("published", report.published);
        span.record("failed", report.failed);
        span.record("parked", report.parked);
        record_batch(
            &self.outbox.table.label(),
            &report,
            finished.started.elapsed(),
        );
        report
    }

    /// What publishing a batch needs, owned.
    pub(super) fn publishing(&self) -> Publishing {
        Publishing {
            publisher: Arc::clone(&self.publisher),
            timeout: self.publish_timeout,
            park_after: self.park_after,
        }
    }
}
