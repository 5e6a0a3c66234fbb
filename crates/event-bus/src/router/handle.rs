//! [`RouterHandle`]: controls a running router.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use tokio::sync::oneshot;

use super::{error::RouterError, run::Running};
use crate::Health;

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;

/// Controls a router started with [`Router::start`](crate::Router::start).
///
/// Dropping the handle shuts the router down too, without waiting.
#[derive(Debug)]
pub struct RouterHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RouterError>>,
    state: Arc<AtomicU8>,
}

impl RouterHandle {
    /// Runs `running` in a background task until the handle's shutdown (or
    /// its drop).
    pub(super) fn spawn(running: Running) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let state = Arc::new(AtomicU8::new(RUNNING));
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let result = running
                .run(async {
                    // A dropped handle also stops the router.
                    let _ = stopped.await;
                })
                .await;
            task_state.store(STOPPED, Ordering::Release);
            result
        });
        Self {
            stop: Some(stop),
            task,
            state,
        }
    }

    /// Stops fetching, waits for in-flight handlers (up to the shutdown
    /// timeout), closes the subscription, and returns how the router ended.
    pub async fn shutdown(mut self) -> Result<(), RouterError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| RouterError::Task(e.to_string()))?
    }

    /// Up while the router runs, down once it stopped (for example because
    /// the subscription was closed).
    pub fn health(&self) -> Health {
        match self.state.load(Ordering::Acquire) {
            RUNNING if !self.task.is_finished() => Health::up(),
            _ => Health::down("router stopped"),
        }
    }
}
