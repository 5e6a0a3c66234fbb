//! The inbox pruner: deletes records past their retention, in the
//! background.

use std::time::Duration;

use super::store::Inbox;
use crate::task::BackgroundTask;

impl Inbox {
    /// Prunes records older than `retention` every `interval`, in a
    /// background task, until the returned handle is shut down or dropped.
    pub fn spawn_pruner(&self, retention: Duration, interval: Duration) -> InboxPrunerHandle {
        let inbox = self.clone();
        let task = BackgroundTask::spawn(|mut stopped| async move {
            loop {
                match inbox.prune(retention).await {
                    Ok(n) => {
                        tracing::debug!(pruned = n, table = %inbox.table(), "pruned the inbox");
                    }
                    Err(error) => {
                        tracing::warn!(%error, table = %inbox.table(), "could not prune the inbox");
                    }
                }
                tokio::select! {
                    () = &mut stopped => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
        InboxPrunerHandle { task }
    }
}

/// Stops an inbox pruner started with [`Inbox::spawn_pruner`].
#[derive(Debug)]
pub struct InboxPrunerHandle {
    task: BackgroundTask<()>,
}

impl InboxPrunerHandle {
    /// Stops the pruner and waits for it.
    pub async fn shutdown(self) {
        let _ = self.task.stop().await;
    }
}
