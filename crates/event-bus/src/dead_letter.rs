//! Dead letters: one vocabulary for the events a consumer group or the outbox
//! gave up on, whatever keeps them.
//!
//! A [`DeadLetter`] is an event that will not be delivered again on its own:
//! a handler refused it for good ([`Settlement::DeadLetter`](crate::Settlement)),
//! it outlasted its retries or a delivery limit, it is not a valid event at
//! all, or (in the outbox) the broker kept refusing to take it. Every place
//! that keeps dead letters offers them through the [`DeadLetterQueue`] trait,
//! so an operator's tool or a test reads, replays and discards them the same
//! way on every backend:
//!
//! | kept by | queue | replay means |
//! |---|---|---|
//! | [`MemoryBus`](crate::memory::MemoryBus) | `dead_letter_queue(group)` | back at the end of the group's queue |
//! | [`RabbitBus`](crate::rabbitmq::RabbitBus) | `dead_letter_queue(group)`: the group's parking-lot queue | republished (confirmed) to the group's own queue only |
//! | [`Outbox`](crate::outbox::Outbox) | `dead_letter_queue(pool)`: the parked rows | the row is put back in line for the relay |
//!
//! A replayed event goes to the group that gave up on it, not to every group
//! bound to its type: the others handled it already.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bytes::Bytes;
//! use tessera_event_bus::{Attributes, DeadLetterQueue, Publisher, RawEvent, SubscribeOptions, Subscriber};
//! use tessera_event_bus::memory::MemoryBus;
//!
//! let bus = MemoryBus::new();
//! let mut sub = bus.subscriber()
//!     .subscribe(SubscribeOptions::new("billing").event_type("com.example.order.placed.v1"))
//!     .await?;
//! let event = RawEvent::new(Attributes::new("1", "/orders", "com.example.order.placed.v1"), Bytes::new());
//! bus.publisher().publish(event).await?;
//! sub.next().await?.unwrap().dead_letter("cannot bill yet").await?;
//!
//! // An operator looks at the group's dead letters, fixes the cause, replays.
//! let queue = bus.dead_letter_queue("billing");
//! let dead = queue.list(10).await?;
//! assert_eq!(dead[0].reason, "cannot bill yet");
//! assert_eq!(dead[0].event().unwrap().attributes.id, "1");
//! assert_eq!(queue.replay(std::slice::from_ref(&dead[0].id)).await?, 1);
//! assert!(queue.list(10).await?.is_empty());
//!
//! let again = sub.next().await?.unwrap();
//! assert_eq!(again.event().attributes.id, "1");
//! # Ok::<(), tessera_event_bus::BusError>(())
//! # }).unwrap();
//! ```

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{error::BusError, message::RawEvent};

/// Which dead letter, as the queue that keeps it names it: a memory bus's
/// sequence number, a parking-lot message's event id, an outbox row's `seq`.
/// Opaque: take it from [`DeadLetter::id`] and hand it back to
/// [`DeadLetterQueue::replay`] or [`DeadLetterQueue::discard`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeadLetterId(String);

impl DeadLetterId {
    /// An id as a queue writes it (backends only; users take ids from [`DeadLetter`]).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text (for logs, command lines, URLs).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for DeadLetterId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for DeadLetterId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// A message kept as a dead letter that is not a valid event (garbage
/// published by another client, a broken encoder), so it has no
/// [`RawEvent`]: its body as it is and why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableMessage {
    /// Why the message is not a valid event.
    pub error: String,
    /// The message body as it is.
    pub body: Bytes,
}

impl UnreadableMessage {
    /// A message that could not be read as an event, and why.
    pub fn new(error: impl Into<String>, body: Bytes) -> Self {
        Self {
            error: error.into(),
            body,
        }
    }
}

/// An event given up on, with why: the same shape on every backend and the
/// outbox (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the queue that keeps it, for [`DeadLetterQueue::replay`] and
    /// [`DeadLetterQueue::discard`].
    pub id: DeadLetterId,
    /// The event as it was published, or the message that could not be read as one.
    pub event: Result<RawEvent, UnreadableMessage>,
    /// Why it was given up on (the handler's or the broker's reason).
    pub reason: String,
    /// How many times it had been delivered (for the outbox: how many
    /// publishes the broker refused).
    pub deliveries: u32,
}

impl DeadLetter {
    /// A dead letter (backends build these; users read them).
    pub fn new(
        id: impl Into<DeadLetterId>,
        event: Result<RawEvent, UnreadableMessage>,
        reason: impl Into<String>,
        deliveries: u32,
    ) -> Self {
        Self {
            id: id.into(),
            event,
            reason: reason.into(),
            deliveries,
        }
    }

    /// The event, when the message was a valid one.
    pub fn event(&self) -> Option<&RawEvent> {
        self.event.as_ref().ok()
    }
}

/// Where dead letters are kept: list them, look at one, put them back in line
/// or throw them away. Implemented by every backend and the outbox (see the
/// [module docs](self)); a handle on one group's (or one outbox's) dead
/// letters, cheap to clone.
///
/// Replay and discard take ids listed before: ids no longer there (replayed
/// or discarded by someone else meanwhile) are skipped, and the count says
/// how many were found.
#[async_trait]
pub trait DeadLetterQueue: Send + Sync + fmt::Debug {
    /// At most `limit` dead letters, oldest first, leaving them in place.
    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError>;

    /// The dead letter with this id, if it is still there.
    async fn get(&self, id: &DeadLetterId) -> Result<Option<DeadLetter>, BusError> {
        Ok(self
            .list(usize::MAX)
            .await?
            .into_iter()
            .find(|dead| &dead.id == id))
    }

    /// Puts these dead letters back in line to be delivered again (to the
    /// group that gave up on them) with their delivery count reset; returns
    /// how many were found and put back. Fix what made them fail first.
    async fn replay(&self, ids: &[DeadLetterId]) -> Result<usize, BusError>;

    /// Removes these dead letters for good; returns how many were found.
    async fn discard(&self, ids: &[DeadLetterId]) -> Result<usize, BusError>;
}
