//! The relay's loop: start and stop, and the pipeline that keeps claims,
//! publishes and settles in flight at once; wake-ups (`LISTEN`/`NOTIFY` or
//! the poll interval), backoff after failures, and the periodic chores.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use futures_util::{StreamExt as _, stream::FuturesUnordered};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tracing::Instrument as _;

use super::{
    claim::{Claimed, decode},
    config::OutboxRelay,
    handle::OutboxRelayHandle,
    pipeline::{Pipeline, Settled},
};
use crate::{outbox::error::OutboxError, task::BackgroundTask};

/// The most outcomes one settle writes.
const MAX_SETTLE: usize = 5_000;

/// How many times a settle is tried once the relay is stopping.
const SETTLE_TRIES_WHEN_STOPPING: usize = 3;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A claim in flight: its id, its limit, its span, and the rows.
type ClaimFuture<'a> = Boxed<'a, (u64, u32, tracing::Span, Result<Vec<Claimed>, OutboxError>)>;

/// A settle in flight: the outcomes it writes, and whether it did.
type SettleFuture<'a> = Boxed<'a, (Vec<Settled>, Result<(), OutboxError>)>;

impl OutboxRelay {
    /// Starts the relay in a background task; stop it with
    /// [`OutboxRelayHandle::shutdown`].
    ///
    /// Fails at once on an invalid configuration or when the database cannot
    /// be reached to start listening.
    pub async fn start(self) -> Result<OutboxRelayHandle, OutboxError> {
        self.validate()?;
        let listener = self.connect_listener().await?;
        // A dropped handle also stops the relay.
        let task = BackgroundTask::spawn(|stopped| self.run_with(listener, stopped));
        Ok(OutboxRelayHandle::new(task))
    }

    /// Runs until `shutdown` completes, then publishes and settles what it
    /// holds and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), OutboxError> {
        self.validate()?;
        let listener = self.connect_listener().await?;
        self.run_with(listener, shutdown).await;
        Ok(())
    }

    async fn connect_listener(&self) -> Result<Option<PgListener>, OutboxError> {
        if !self.listen {
            return Ok(None);
        }
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.outbox.table.label()).await?;
        Ok(Some(listener))
    }

    /// The pipeline: claims while there is room and rows may be ready,
    /// publishes each claimed row at once, settles outcomes as the prefix
    /// rule releases them (one settle at a time, each taking all that is
    /// ready), until `shutdown`; then drains what it holds.
    #[allow(clippy::too_many_lines)] // one select over the pipeline's stages reads best whole
    async fn run_with(self, listener: Option<PgListener>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let relay = &self;
        let label = self.outbox.table.label();
        let wake = Notify::new();
        let listening = forward_notifications(listener, &wake);
        tokio::pin!(listening);
        let mut pipeline = Pipeline::default();
        let mut publishes = FuturesUnordered::new();
        let mut claim: Option<ClaimFuture<'_>> = None;
        let mut settle: Option<SettleFuture<'_>> = None;
        let mut chores: Option<Boxed<'_, ()>> = None;
        // Rows may be ready: at start, after a full claim, a NOTIFY, a poll tick.
        let mut more = true;
        let mut stopping = false;
        let mut claims_paused_until: Option<Instant> = None;
        let mut settles_paused_until: Option<Instant> = None;
        let (mut claim_failures, mut settle_failures, mut broker_failures) = (0, 0, 0);
        let mut next_poll = Instant::now() + self.poll_interval;
        let mut next_metrics = Instant::now();
        let mut next_prune = Instant::now() + self.prune_interval;
        tracing::info!(table = %label, owner = %self.owner, "outbox relay started");
        loop {
            let now = Instant::now();
            if now >= next_poll {
                more = true;
                next_poll = now + self.poll_interval;
            }
            if chores.is_none() && !stopping && (now >= next_metrics || now >= next_prune) {
                let (metrics, prune) = (now >= next_metrics, now >= next_prune);
                if metrics {
                    next_metrics = now + self.metrics_interval;
                }
                if prune {
                    next_prune = now + self.prune_interval;
                }
                chores = Some(Box::pin(self.chores(label.clone(), metrics, prune)));
            }
            let room = self.max_in_flight.saturating_sub(pipeline.held());
            if claim.is_none()
                && !stopping
                && more
                && room > 0
                && claims_paused_until.is_none_or(|until| now >= until)
            {
                more = false;
                claims_paused_until = None;
                let id = pipeline.start_claim();
                let limit = u32::try_from(room).unwrap_or(u32::MAX).min(self.batch_size);
                let span = self.batch_span();
                claim = Some(Box::pin(async move {
                    let rows = relay.claim(limit).instrument(span.clone()).await;
                    (id, limit, span, rows)
                }));
            }
            if settle.is_none()
                && pipeline.has_ready()
                && settles_paused_until.is_none_or(|until| now >= until)
            {
                settles_paused_until = None;
                let batch = pipeline.take_ready(MAX_SETTLE);
                settle = Some(Box::pin(async move {
                    let written = relay.settle(&batch).await;
                    (batch, written)
                }));
            }
            if stopping && claim.is_none() && settle.is_none() && publishes.is_empty() {
                if !pipeline.has_ready() {
                    break;
                }
                if settle_failures >= SETTLE_TRIES_WHEN_STOPPING {
                    // Rows left claimed are published again once their lease expires.
                    tracing::warn!(table = %label, rows = pipeline.held(), "outbox relay stopping without marking its rows");
                    break;
                }
            }
            let mut wake_at = next_poll.min(next_metrics).min(next_prune);
            for until in [claims_paused_until, settles_paused_until]
                .into_iter()
                .flatten()
            {
                wake_at = wake_at.min(until);
            }
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => stopping = true,
                (id, limit, span, rows) = in_flight(&mut claim) => {
                    claim = None;
                    match rows {
                        Ok(rows) => {
                            claim_failures = 0;
                            more |= rows.len() >= limit as usize;
                            let rows = pipeline.admit(id, rows, span, decode);
                            if !rows.is_empty() {
                                publishes.push(self.publishing().batch(rows));
                            }
                        }
                        Err(error) => {
                            let delay = self.backoff_delay(claim_failures);
                            claim_failures += 1;
                            tracing::warn!(%error, table = %label, ?delay, "outbox relay could not claim rows");
                            claims_paused_until = Some(Instant::now() + delay);
                            more = true;
                        }
                    }
                }
                (batch, written) = in_flight(&mut settle) => {
                    settle = None;
                    match written {
                        Ok(()) => {
                            settle_failures = 0;
                            for finished in pipeline.settled(&batch) {
                                self.record(&finished);
                            }
                        }
                        Err(error) => {
                            let delay = self.backoff_delay(settle_failures);
                            settle_failures += 1;
                            tracing::warn!(%error, table = %label, ?delay, "outbox relay could not mark rows; retrying");
                            pipeline.retry(batch);
                            settles_paused_until = Some(Instant::now() + delay);
                        }
                    }
                }
                Some(published) = publishes.next(), if !publishes.is_empty() => {
                    if published.unreachable {
                        // The broker is out of reach: claim no more for a while.
                        let delay = self.backoff_delay(broker_failures);
                        broker_failures += 1;
                        claims_paused_until = Some(Instant::now() + delay);
                        more = true;
                    } else {
                        broker_failures = 0;
                    }
                    for (seq, outcome) in published.outcomes {
                        pipeline.complete(seq, outcome);
                    }
                }
                () = in_flight(&mut chores) => chores = None,
                () = wake.notified(), if !stopping => more = true,
                () = &mut listening => {}
                () = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
        tracing::info!(table = %label, owner = %self.owner, "outbox relay stopped");
    }

    /// Refreshes the backlog gauges and prunes sent rows, as asked.
    async fn chores(&self, label: String, metrics: bool, prune: bool) {
        if metrics {
            self.report_backlog(&label).await;
        }
        if prune {
            self.prune(&label).await;
        }
    }
}

/// Awaits the future in `slot`; never completes while the slot is empty.
async fn in_flight<T>(slot: &mut Option<Boxed<'_, T>>) -> T {
    match slot {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Wakes the relay on every notification; never completes. On a lost
/// connection it wakes the relay too (it polls while the listener
/// reconnects on the next receive).
async fn forward_notifications(listener: Option<PgListener>, wake: &Notify) {
    let Some(mut listener) = listener else {
        return std::future::pending().await;
    };
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("outbox listener reconnecting"),
            Err(error) => {
                tracing::warn!(%error, "outbox listener failed; polling");
                // Avoid a hot loop while the database is down.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        wake.notify_one();
    }
}
