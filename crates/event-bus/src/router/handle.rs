//! [`RouterHandle`]: controls a running router.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use super::{error::RouterError, run::Running};
use crate::{Health, task::BackgroundTask};

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;

/// Controls a router started with [`Router::start`](crate::Router::start).
///
/// Dropping the handle shuts the router down too, without waiting.
#[derive(Debug)]
pub struct RouterHandle {
    task: BackgroundTask<Result<(), RouterError>>,
    state: Arc<AtomicU8>,
}

impl RouterHandle {
    /// Runs `running` in a background task until the handle's shutdown (or
    /// its drop).
    pub(super) fn spawn(running: Running) -> Self {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let task_state = Arc::clone(&state);
        // A dropped handle also stops the router.
        let task = BackgroundTask::spawn(|stopped| async move {
            let result = running.run(stopped).await;
            task_state.store(STOPPED, Ordering::Release);
            result
        });
        Self { task, state }
    }

    /// Stops fetching, waits for in-flight handlers (up to the shutdown
    /// timeout), closes the subscription, and returns how the router ended.
    pub async fn shutdown(self) -> Result<(), RouterError> {
        self.task
            .stop()
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
