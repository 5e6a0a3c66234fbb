//! [`OutboxRelayHandle`]: controls a running relay.

use crate::{outbox::error::OutboxError, task::BackgroundTask};

/// Controls a relay started with [`OutboxRelay::start`](crate::outbox::OutboxRelay::start).
///
/// Dropping the handle stops the relay too, without waiting.
#[derive(Debug)]
pub struct OutboxRelayHandle {
    task: BackgroundTask<()>,
}

impl OutboxRelayHandle {
    /// The handle of the relay `task`.
    pub(super) fn new(task: BackgroundTask<()>) -> Self {
        Self { task }
    }

    /// Stops claiming, publishes and marks the rows the relay holds, and
    /// waits for the relay to end.
    pub async fn shutdown(self) -> Result<(), OutboxError> {
        self.task
            .stop()
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
