//! [`BackgroundTask`]: a spawned loop and the signal that stops it, as the
//! handles of the outbox relay, the router and the inbox pruner hold them.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    sync::oneshot,
    task::{JoinError, JoinHandle},
};

/// A task running a loop until its stop signal; dropping this drops the
/// sender, which stops the loop too (without waiting for it).
#[derive(Debug)]
pub(crate) struct BackgroundTask<T> {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<T>,
}

impl<T: Send + 'static> BackgroundTask<T> {
    /// Spawns `run(stopped)`, where `stopped` completes once the task is
    /// asked to stop or this handle is dropped.
    pub(crate) fn spawn<F>(run: impl FnOnce(StopSignal) -> F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(StopSignal(stopped)));
        Self {
            stop: Some(stop),
            task,
        }
    }
}

impl<T> BackgroundTask<T> {
    /// Signals the loop to stop and waits for the task to end.
    pub(crate) async fn stop(mut self) -> Result<T, JoinError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await
    }

    /// Kills the task at once, wherever it is.
    #[cfg(feature = "postgres")]
    pub(crate) fn abort(&self) {
        self.task.abort();
    }

    /// Whether the task has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// What a [`BackgroundTask`]'s loop awaits to know it should stop:
/// completes on [`BackgroundTask::stop`] or when the handle is dropped.
#[derive(Debug)]
pub(crate) struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}
