//! The relay's loop: start and stop, wake-ups (`LISTEN`/`NOTIFY` or the poll
//! interval), backoff after failed rounds, and the periodic chores.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use super::{config::OutboxRelay, handle::OutboxRelayHandle};
use crate::{outbox::error::OutboxError, task::BackgroundTask};
use sqlx::postgres::PgListener;

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

    /// Runs until `shutdown` completes, then finishes the round in flight and
    /// returns.
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

    async fn run_with(self, mut listener: Option<PgListener>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let label = self.outbox.table.label();
        let mut stopping = false;
        let mut next_prune = Instant::now() + self.prune_interval;
        let mut next_metrics = Instant::now();
        let mut db_failures: usize = 0;
        tracing::info!(table = %label, owner = %self.owner, "outbox relay started");
        while !stopping {
            if Instant::now() >= next_metrics {
                next_metrics = Instant::now() + self.metrics_interval;
                self.report_backlog(&label).await;
            }
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + self.prune_interval;
                self.prune(&label).await;
            }
            // The round in flight always completes: shutdown only stops the next one.
            let round = self.publish_pending();
            tokio::pin!(round);
            let result = loop {
                tokio::select! {
                    biased;
                    result = &mut round => break result,
                    () = &mut shutdown, if !stopping => stopping = true,
                }
            };
            let idle = match result {
                Ok(report) if report.claimed > 0 => {
                    db_failures = 0;
                    continue;
                }
                Ok(_) => {
                    db_failures = 0;
                    self.poll_interval
                }
                Err(error) => {
                    let delay = self.backoff_delay(db_failures);
                    db_failures += 1;
                    tracing::warn!(%error, table = %label, ?delay, "outbox relay round failed");
                    delay
                }
            };
            if stopping {
                break;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => stopping = true,
                () = wait_for_notification(&mut listener), if listener.is_some() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
        if let Some(mut listener) = listener {
            let _ = listener.unlisten_all().await;
        }
        tracing::info!(table = %label, owner = %self.owner, "outbox relay stopped");
    }
}

/// Waits for the next notification; on a lost connection, returns at once
/// (the caller polls, and the listener reconnects on the next call).
async fn wait_for_notification(listener: &mut Option<PgListener>) {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    match listener.try_recv().await {
        Ok(Some(_)) => {}
        Ok(None) => tracing::debug!("outbox listener reconnecting"),
        Err(error) => {
            tracing::warn!(%error, "outbox listener failed; polling");
            // Avoid a hot loop while the database is down.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
