//! [`Puller`]: pulls a subscription's messages from its group's consumers
//! in batches it asks for when it needs them, so that a member holds few
//! messages it is not handling and the others get their share.
//!
//! A batch starts at one message; each batch taken in full doubles the next
//! (up to the prefetch), a batch that ends empty (nothing to pull for a
//! while) starts over at one. Each consumer has **one pull request
//! outstanding at a time**: the server hands the messages of a consumer to
//! its waiting requests in turn, so with two requests open a message could
//! sit in the second while the first waited for the rest of its batch (until
//! it expired, seconds later), and the two would interleave the stream's
//! order. The next request goes out as soon as the current one is complete;
//! on a busy consumer that is one round trip per batch. A member that stops
//! taking messages leaves at most a batch waiting on the client; the server
//! delivers those again after `ack_wait`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{PullConsumer, pull::Batch},
};
use futures_util::StreamExt;

use super::stream::connection_error;
use crate::error::BusError;

/// How long a pull request waits on the server for messages.
const EXPIRES: Duration = Duration::from_secs(5);

/// What a pull gave.
// Moved once per message, never stored: boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(super) enum Pulled {
    /// A message from the consumer with this index.
    Message(usize, jetstream::Message),
    /// Pulling failed (the consumer or the stream is gone, the server said no).
    Failed(String),
}

/// A batch asked for and not finished.
struct InBatch {
    messages: Pin<Box<Batch>>,
    requested: usize,
    received: usize,
}

/// One consumer and its pull request on its way, if any.
struct Lane {
    index: usize,
    consumer: PullConsumer,
    batch: Option<InBatch>,
}

/// What one poll of the lanes gave.
#[allow(clippy::large_enum_variant)]
enum Step {
    Pulled(Pulled),
    /// A batch ended: time to ask for more.
    Ended,
}

/// Pulls from a set of consumers.
pub(super) struct Puller {
    lanes: Vec<Lane>,
    /// The lane polled first next time (round robin between consumers).
    start: usize,
    window: usize,
    max_window: usize,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("consumers", &self.lanes.len())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Puller {
    pub(super) fn new(consumers: Vec<(usize, PullConsumer)>, max_window: usize) -> Self {
        Self {
            lanes: consumers
                .into_iter()
                .map(|(index, consumer)| Lane {
                    index,
                    consumer,
                    batch: None,
                })
                .collect(),
            start: 0,
            window: 1,
            max_window: max_window.max(1),
        }
    }

    /// Asks each consumer for a batch where none is on its way (never a
    /// second one beside it: see the module docs).
    async fn request_more(&mut self) -> Result<(), BusError> {
        let window = self.window;
        for lane in &mut self.lanes {
            if lane.batch.is_some() {
                continue;
            }
            let messages = lane
                .consumer
                .batch()
                .max_messages(window)
                .expires(EXPIRES)
                .messages()
                .await
                .map_err(connection_error)?;
            lane.batch = Some(InBatch {
                messages: Box::pin(messages),
                requested: window,
                received: 0,
            });
        }
        Ok(())
    }

    fn ended(&mut self, requested: usize, received: usize) {
        if received >= requested {
            self.window = (self.window * 2).min(self.max_window);
        } else if received == 0 {
            self.window = 1;
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let n = self.lanes.len();
        for k in 0..n {
            let i = (self.start + k) % n;
            let Some(front) = self.lanes[i].batch.as_mut() else {
                continue;
            };
            match front.messages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    front.received += 1;
                    self.start = (i + 1) % n;
                    return Poll::Ready(Step::Pulled(Pulled::Message(
                        self.lanes[i].index,
                        message,
                    )));
                }
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Step::Pulled(Pulled::Failed(error.to_string())));
                }
                Poll::Ready(None) => {
                    let done = self.lanes[i].batch.take();
                    if let Some(done) = done {
                        self.ended(done.requested, done.received);
                    }
                    return Poll::Ready(Step::Ended);
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// The next message (asking for more when needed), or why pulling failed.
    pub(super) async fn next(&mut self) -> Result<Pulled, BusError> {
        loop {
            self.request_more().await?;
            match std::future::poll_fn(|cx| self.poll_step(cx)).await {
                Step::Pulled(pulled) => return Ok(pulled),
                Step::Ended => {}
            }
        }
    }

    /// A message already received, without asking for more or waiting.
    pub(super) fn try_next(&mut self) -> Option<Pulled> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll_step(&mut cx) {
                Poll::Ready(Step::Pulled(pulled)) => return Some(pulled),
                Poll::Ready(Step::Ended) => {}
                Poll::Pending => return None,
            }
        }
    }

    /// The messages received and not taken (to hand back), ending every batch.
    pub(super) fn drain(mut self) -> Vec<jetstream::Message> {
        let mut left = Vec::new();
        while let Some(pulled) = self.try_next() {
            if let Pulled::Message(_, message) = pulled {
                left.push(message);
            }
        }
        left
    }
}
