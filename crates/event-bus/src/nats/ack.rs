//! Acks and in-progress acks of one subscription.
//!
//! [`AckQueue`]: an ack is queued without waiting and one task sends the
//! queued acks together (the client writes them in one go), so the router
//! settles a delivery without a future of its own, as on RabbitMQ. An ack
//! lost with the connection makes the server deliver the event again after
//! `ack_wait` (a duplicate, which consumers tolerate), never drops it.
//!
//! [`InFlight`]: the deliveries handed out and not settled yet; a task tells
//! the server every half `ack_wait` that they are still being worked on
//! (`+WPI`), so a long handler does not see its event delivered again to
//! another member meanwhile.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, Subject};
use bytes::Bytes;
use tokio::sync::mpsc;

const ACK: &[u8] = b"+ACK";
const IN_PROGRESS: &[u8] = b"+WPI";

/// Queues acks for one task to send.
#[derive(Debug)]
pub(super) struct AckQueue {
    tx: mpsc::UnboundedSender<Subject>,
}

impl AckQueue {
    /// Starts the sending task on `client`; it ends when the queue is dropped.
    pub(super) fn start(client: Client) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Subject>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(64);
            while rx.recv_many(&mut batch, 256).await > 0 {
                for reply in batch.drain(..) {
                    if let Err(error) = client.publish(reply, Bytes::from_static(ACK)).await {
                        tracing::debug!(%error, "could not send an ack; the server redelivers");
                    }
                }
            }
        });
        Self { tx }
    }

    /// Queues an ack; `false` when the sending task is gone.
    pub(super) fn ack(&self, reply: Subject) -> bool {
        self.tx.send(reply).is_ok()
    }
}

/// The unsettled deliveries of a subscription, kept alive with `+WPI`.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    next: AtomicU64,
    replies: Mutex<HashMap<u64, Unsettled>>,
}

/// A delivery handed out: where to ack it, which consumer, which stream sequence.
#[derive(Debug)]
struct Unsettled {
    reply: Subject,
    consumer: usize,
    sequence: u64,
}

impl InFlight {
    /// Registers a delivery of the consumer numbered `consumer`; the token takes it out again.
    pub(super) fn add(&self, reply: Subject, consumer: usize, sequence: u64) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            token,
            Unsettled {
                reply,
                consumer,
                sequence,
            },
        );
        token
    }

    /// The lowest stream sequence of the consumer's unsettled deliveries.
    pub(super) fn lowest(&self, consumer: usize) -> Option<u64> {
        self.lock()
            .values()
            .filter(|u| u.consumer == consumer)
            .map(|u| u.sequence)
            .min()
    }

    pub(super) fn remove(&self, token: u64) {
        self.lock().remove(&token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Unsettled>> {
        self.replies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn replies(&self) -> Vec<Subject> {
        self.lock().values().map(|u| u.reply.clone()).collect()
    }

    /// Sends `+WPI` for every unsettled delivery every `every`, while the
    /// registry is alive (the task holds it weakly).
    pub(super) fn keep_alive(self: &Arc<Self>, client: Client, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                for reply in this.replies() {
                    if client
                        .publish(reply, Bytes::from_static(IN_PROGRESS))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_deliveries_leave_the_registry() {
        let inflight = InFlight::default();
        let a = inflight.add(Subject::from("$JS.ACK.a"), 0, 7);
        let b = inflight.add(Subject::from("$JS.ACK.b"), 0, 9);
        assert_ne!(a, b);
        assert_eq!(inflight.lowest(0), Some(7));
        assert_eq!(inflight.lowest(1), None);
        inflight.remove(a);
        assert_eq!(inflight.lowest(0), Some(9));
        assert_eq!(inflight.replies(), [Subject::from("$JS.ACK.b")]);
        inflight.remove(b);
        assert!(inflight.replies().is_empty());
    }
}
