//! [`OutboxRelayHandle`]: controls a running relay.

use tokio::sync::oneshot;

use crate::outbox::error::OutboxError;

/// Controls a relay started with [`OutboxRelay::start`](crate::outbox::OutboxRelay::start).
///
/// Dropping the handle stops the relay too, without waiting.
#[derive(Debug)]
pub struct OutboxRelayHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl OutboxRelayHandle {
    /// The handle of the relay `task`, which stops when `stop` fires or is dropped.
    pub(super) fn new(stop: oneshot::Sender<()>, task: tokio::task::JoinHandle<()>) -> Self {
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Stops claiming, finishes the round in flight (publish and mark), and
    /// waits for the relay to end.
    pub async fn shutdown(mut self) -> Result<(), OutboxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| OutboxError::Task(e.to_string()))
    }

    /// Kills the relay task at once, wherever it is (a crash, for tests):
    /// rows it claimed are published again after their lease expires.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Whether the relay task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}
