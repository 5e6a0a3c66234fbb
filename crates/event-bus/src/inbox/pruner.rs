//! The inbox pruner: deletes records past their retention, in the
//! background.

use std::time::Duration;

use tokio::sync::oneshot;

use super::store::Inbox;

impl Inbox {
    /// Prunes records older than `retention` every `interval`, in a
    /// background task, until the returned handle is shut down or dropped.
    pub fn spawn_pruner(&self, retention: Duration, interval: Duration) -> InboxPrunerHandle {
        let inbox = self.clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
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
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
        InboxPrunerHandle {
            stop: Some(stop),
            task,
        }
    }
}

/// Stops an inbox pruner started with [`Inbox::spawn_pruner`].
#[derive(Debug)]
pub struct InboxPrunerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InboxPrunerHandle {
    /// Stops the pruner and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
