//! Micro-batching of router deliveries: one store transaction for many events.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::user_replica::{Inner, UserReplica};
use crate::{events::UserEvent, store::ReplicaStore};

/// How deliveries are grouped: at most `max_events` per batch, waiting at
/// most `max_wait` after the first for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchOptions {
    pub(super) max_events: usize,
    pub(super) max_wait: Duration,
}

/// One delivery waiting for its batch: the event and where to say how it went.
pub(super) type Pending = (UserEvent, oneshot::Sender<Result<(), String>>);

/// Starts the batching task for a replica; it ends when the replica is dropped.
pub(super) fn spawn<S: ReplicaStore>(
    replica: Weak<Inner<S>>,
    options: BatchOptions,
) -> mpsc::Sender<Pending> {
    let (tx, mut rx) = mpsc::channel::<Pending>(options.max_events.max(1) * 4);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::sleep(options.max_wait);
            tokio::pin!(deadline);
            while batch.len() < options.max_events {
                tokio::select! {
                    biased;
                    item = rx.recv() => match item {
                        Some(item) => batch.push(item),
                        None => break,
                    },
                    () = &mut deadline => break,
                }
            }
            let (events, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let result = match replica.upgrade() {
                Some(inner) => UserReplica { inner }
                    .apply_all(events)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Err("the replica was dropped".to_owned()),
            };
            for waiter in waiters {
                // A waiter that gave up (timeout) has its event redelivered anyway.
                let _ = waiter.send(result.clone());
            }
        }
    });
    tx
}

/// The lazily started batching task of a replica.
pub(super) struct Batcher {
    pub(super) options: BatchOptions,
    pub(super) sender: std::sync::OnceLock<mpsc::Sender<Pending>>,
}

impl Batcher {
    pub(super) fn new(options: BatchOptions) -> Self {
        Self {
            options,
            sender: std::sync::OnceLock::new(),
        }
    }
}

impl<S: ReplicaStore> UserReplica<S> {
    /// Applies `event` in the next batch; waits for the batch's outcome.
    pub(super) async fn apply_batched(
        &self,
        batcher: &Batcher,
        event: UserEvent,
    ) -> Result<(), String> {
        let sender = batcher
            .sender
            .get_or_init(|| spawn(Arc::downgrade(&self.inner), batcher.options))
            .clone();
        let (done, outcome) = oneshot::channel();
        sender
            .send((event, done))
            .await
            .map_err(|_| "the batching task stopped".to_owned())?;
        outcome
            .await
            .map_err(|_| "the batching task stopped".to_owned())?
    }
}
