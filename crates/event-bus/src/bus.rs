//! The backend contract: [`Publisher`], [`Subscriber`], [`Subscription`] and [`Delivery`].
//!
//! These traits are object safe (`Arc<dyn Publisher>`, `Box<dyn Subscription>`)
//! and carry [`RawEvent`]s, so a backend knows nothing of Rust event types.
//! Every backend (in-memory, RabbitMQ, ...) runs the conformance kit
//! (feature `testkit`) to prove it keeps these contracts.
//!
//! How a broker backend maps onto these traits (RabbitMQ with lapin, for example):
//!
//! | trait | AMQP 0-9-1 |
//! | --- | --- |
//! | [`Publisher::publish`] | `basic.publish` (persistent, mandatory) on a confirm channel, `Ok` on the broker's ack; a `basic.return` or nack is an error; attributes as `ce-` headers via [`wire::to_binary`](crate::wire::to_binary) |
//! | [`Publisher::publish_all`] | pipelined publishes, awaiting all confirms |
//! | [`SubscribeOptions`] | one durable queue per group, bound by each event type |
//! | [`Subscription::next`] | the consumer stream (manual ack, prefetch); headers read with [`wire::from_message`](crate::wire::from_message), invalid messages dead-lettered by the backend |
//! | [`Delivery::attempt`] | `x-delivery-count` (quorum queues) or a retry header; at least 2 when `redelivered` |
//! | [`Settlement::Ack`] / [`Settlement::Requeue`] | `basic.ack` / `basic.nack(requeue)` on the delivery tag |
//! | [`Settlement::RetryAfter`] | publish to a TTL retry queue that dead-letters back, then ack |
//! | [`Settlement::DeadLetter`] | publish to the group's parking-lot queue with the reason, then ack |
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bytes::Bytes;
//! use tessera_event_bus::{Attributes, Publisher, RawEvent, SubscribeOptions, Subscriber};
//! use tessera_event_bus::memory::MemoryBus;
//!
//! let bus = MemoryBus::new();
//! let (publisher, subscriber) = (bus.publisher(), bus.subscriber());
//! let mut sub = subscriber
//!     .subscribe(SubscribeOptions::new("comments").event_type("com.example.user.deleted.v1"))
//!     .await?;
//!
//! let attrs = Attributes::new("1", "/users", "com.example.user.deleted.v1");
//! publisher.publish(RawEvent::new(attrs, Bytes::from_static(b"{}"))).await?;
//!
//! let delivery = sub.next().await?.expect("one delivery");
//! assert_eq!(delivery.event().id(), "1");
//! assert_eq!(delivery.attempt(), 1);
//! delivery.ack().await?;
//! # Ok::<(), tessera_event_bus::BusError>(())
//! # }).unwrap();
//! ```

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;

use crate::{RawEvent, error::BusError, messaging::Messaging};

/// Sends events to the bus.
///
/// # Contract
///
/// - [`publish`](Publisher::publish) returns `Ok` only once the backend has
///   durably accepted the event (for RabbitMQ: the broker's publisher confirm
///   arrived and the message was routed). An `Err` means the event may not
///   have been accepted; the caller decides whether to retry (consumers
///   deduplicate on the event id, so retrying is safe).
/// - An event that no consumer group is bound to is an error
///   ([`BusError::Unroutable`]), not a silent drop.
/// - Attributes that break CloudEvents are refused with
///   [`BusError::InvalidEvent`] before anything is sent.
/// - A backend with bounded queues applies backpressure: `publish` waits for
///   room instead of dropping.
/// - [`close`](Publisher::close) is idempotent; after it, `publish` fails with
///   [`BusError::Closed`].
/// - Publishing from many tasks at once is allowed.
#[async_trait]
pub trait Publisher: Send + Sync + fmt::Debug {
    /// Publishes one event; `Ok` once the backend has durably accepted it.
    async fn publish(&self, event: RawEvent) -> Result<(), BusError>;

    /// Publishes several events, `Ok` once every one was durably accepted.
    ///
    /// Not atomic: on `Err`, some events may have been accepted. Backends may
    /// pipeline (many unconfirmed publishes in flight); the default publishes
    /// one after the other.
    async fn publish_all(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }

    /// Closes the publisher. Idempotent.
    async fn close(&self) -> Result<(), BusError>;

    /// The state of the connection behind this publisher.
    fn health(&self) -> Health;

    /// How this backend appears in telemetry (`messaging.system`, the destination).
    fn messaging(&self) -> Messaging {
        Messaging::default()
    }
}

/// Opens subscriptions on the bus.
///
/// # Contract
///
/// - A subscription belongs to a consumer **group** (usually the service
///   name). Every group receives each event published after the group was
///   first bound to its type; the members (subscriptions) of one group
///   compete, so each event goes to one member at a time.
/// - A group's event types are the union of what its members subscribed to.
///   Types are exact names; a backend may accept AMQP topic patterns
///   (`*` one word, `#` zero or more words) as well.
/// - Delivery is at least once: a delivery that is nacked, or never settled
///   (its subscription closes or the [`Delivery`] is dropped unsettled), is
///   delivered again, to this member or another one of the group.
/// - [`close`](Subscriber::close) is idempotent and ends every subscription
///   opened from this subscriber (their `next` returns `Ok(None)`).
#[async_trait]
pub trait Subscriber: Send + Sync + fmt::Debug {
    /// Joins the options' group and binds it to the options' event types.
    async fn subscribe(&self, options: SubscribeOptions)
    -> Result<Box<dyn Subscription>, BusError>;

    /// Closes the subscriber and all its subscriptions. Idempotent.
    async fn close(&self) -> Result<(), BusError>;

    /// The state of the connection behind this subscriber.
    fn health(&self) -> Health;

    /// How this backend appears in telemetry (`messaging.system`, the destination).
    fn messaging(&self) -> Messaging {
        Messaging::default()
    }
}

/// A stream of deliveries for one member of a consumer group.
///
/// # Contract
///
/// - [`next`](Subscription::next) is cancel safe: dropping its future before
///   it completes loses no delivery.
/// - `Ok(None)` means the subscription is closed (by
///   [`close`](Subscription::close) or its subscriber's close); `Err` means it
///   failed for good, after whatever recovery the backend does.
/// - Messages on the wire that are not valid CloudEvents never reach the
///   caller: the backend dead-letters them with the reason.
/// - [`close`](Subscription::close) is idempotent; unsettled deliveries are
///   redelivered to other members.
#[async_trait]
pub trait Subscription: Send + fmt::Debug {
    /// The next delivery; `Ok(None)` once closed.
    async fn next(&mut self) -> Result<Option<Delivery>, BusError>;

    /// A delivery the backend has at hand now, without waiting; `None` when
    /// it has none ready (or cannot tell without waiting), when the
    /// subscription is closed, or when it failed: [`next`](Subscription::next)
    /// then waits for one or reports why.
    ///
    /// A fast path for consumers that take deliveries in bursts (the
    /// [router](crate::Router) calls it before each `next`): no future per
    /// delivery. The default returns `None`.
    fn try_next(&mut self) -> Option<Delivery> {
        None
    }

    /// Stops receiving. Idempotent.
    async fn close(&mut self) -> Result<(), BusError>;
}

/// How a delivery is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// Processed: remove the event from the group's queue.
    Ack,
    /// Not processed: deliver it again as soon as possible.
    Requeue,
    /// Not processed: deliver it again after a delay (a retry queue with a TTL on RabbitMQ).
    RetryAfter(Duration),
    /// Give up: move it to the group's dead letters with the reason.
    DeadLetter(String),
}

/// The backend side of one delivery: settles it on the broker.
///
/// Backends implement this; callers use [`Delivery`]'s methods, which make
/// settling idempotent. An acker dropped without being settled must lead to
/// redelivery (RabbitMQ does that when the channel closes; the in-memory
/// backend requeues on drop).
#[async_trait]
pub trait Acker: Send + Sync + fmt::Debug {
    /// Settles the delivery. Called at most once per delivery by [`Delivery`].
    async fn settle(&self, settlement: Settlement) -> Result<(), BusError>;

    /// Settles the delivery at once when the backend can do so without
    /// waiting (no future to allocate); gives the settlement back when it
    /// cannot, and [`Delivery`] then awaits [`settle`](Acker::settle)
    /// instead. Either way it is called at most once per delivery, in place
    /// of `settle`. The default gives every settlement back.
    fn try_settle(&self, settlement: Settlement) -> Result<Result<(), BusError>, Settlement> {
        Err(settlement)
    }
}

/// One delivery of an event to a member of a consumer group.
///
/// Settling is idempotent: the first successful [`ack`](Delivery::ack),
/// [`nack`](Delivery::nack), [`retry_after`](Delivery::retry_after) or
/// [`dead_letter`](Delivery::dead_letter) decides; later calls do nothing and
/// return `Ok`. A delivery dropped unsettled is delivered again.
#[derive(Debug)]
pub struct Delivery {
    event: Arc<RawEvent>,
    attempt: u32,
    settled: AtomicBool,
    acker: Box<dyn Acker>,
}

impl Delivery {
    /// A delivery; backends call this.
    ///
    /// `attempt` is 1 for the first delivery of the event to this group and
    /// grows with each redelivery (a backend that cannot count exactly reports
    /// at least 2 for any redelivery).
    pub fn new(event: RawEvent, attempt: u32, acker: Box<dyn Acker>) -> Self {
        Self::shared(Arc::new(event), attempt, acker)
    }

    /// A delivery of an event the backend shares (with its acker, say)
    /// instead of copying it.
    pub fn shared(event: Arc<RawEvent>, attempt: u32, acker: Box<dyn Acker>) -> Self {
        Self {
            event,
            attempt,
            settled: AtomicBool::new(false),
            acker,
        }
    }

    /// The event.
    pub fn event(&self) -> &RawEvent {
        &self.event
    }

    /// The event, shared: handlers and retries hold it without copying.
    pub fn shared_event(&self) -> &Arc<RawEvent> {
        &self.event
    }

    /// Which delivery of this event to this group this is, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the delivery was settled.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// Acknowledges: the event is processed and leaves the queue.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.settle(Settlement::Ack).await
    }

    /// Negative acknowledgement: the event is delivered again.
    pub async fn nack(&self) -> Result<(), BusError> {
        self.settle(Settlement::Requeue).await
    }

    /// The event is delivered again after `delay`.
    pub async fn retry_after(&self, delay: Duration) -> Result<(), BusError> {
        self.settle(Settlement::RetryAfter(delay)).await
    }

    /// The event goes to the group's dead letters with `reason`.
    pub async fn dead_letter(&self, reason: impl Into<String>) -> Result<(), BusError> {
        self.settle(Settlement::DeadLetter(reason.into())).await
    }

    /// Settles the delivery once; later calls return `Ok` and do nothing.
    pub async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = match self.acker.try_settle(settlement) {
            Ok(settled) => settled,
            Err(settlement) => self.acker.settle(settlement).await,
        };
        if result.is_err() {
            // Not settled after all: let the caller try again.
            self.settled.store(false, Ordering::Release);
        }
        result
    }
}

/// What a subscription asks for: a group, event types, a prefetch window.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SubscribeOptions {
    /// The consumer group (usually the service name).
    pub group: String,
    /// The event types (binding keys) the group receives.
    pub event_types: Vec<String>,
    /// How many unsettled deliveries a broker may push ahead of `next` (AMQP prefetch).
    pub prefetch: u16,
}

impl SubscribeOptions {
    /// Options for `group`, no event types yet, prefetch 100.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            event_types: Vec::new(),
            prefetch: 100,
        }
    }

    /// Adds an event type.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_types.push(event_type.into());
        self
    }

    /// Adds event types.
    pub fn event_types<I, S>(mut self, event_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types
            .extend(event_types.into_iter().map(Into::into));
        self
    }

    /// Sets the prefetch window.
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Checks the options: a non-empty group and at least one non-empty event type.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.group.trim().is_empty() {
            return Err(BusError::InvalidSubscription(
                "the group name is empty".to_owned(),
            ));
        }
        if self.event_types.is_empty() {
            return Err(BusError::InvalidSubscription(
                "no event types given".to_owned(),
            ));
        }
        if self.event_types.iter().any(String::is_empty) {
            return Err(BusError::InvalidSubscription(
                "an event type is empty".to_owned(),
            ));
        }
        Ok(())
    }
}

/// The state of a backend connection or a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Up, degraded or down.
    pub status: HealthStatus,
    /// A short human-readable explanation, never a secret.
    pub detail: Option<String>,
}

impl Health {
    /// Working.
    pub fn up() -> Self {
        Self {
            status: HealthStatus::Up,
            detail: None,
        }
    }

    /// Working, but impaired (for example reconnecting).
    pub fn degraded(detail: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            detail: Some(detail.into()),
        }
    }

    /// Not working (for example closed).
    pub fn down(detail: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Down,
            detail: Some(detail.into()),
        }
    }

    /// Whether the status is [`HealthStatus::Up`].
    pub fn is_up(&self) -> bool {
        self.status == HealthStatus::Up
    }
}

/// Coarse health states, as readiness probes want them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthStatus {
    /// Working.
    Up,
    /// Working, but impaired.
    Degraded,
    /// Not working.
    Down,
}

/// A future as `async_trait` methods return it.
pub(crate) type TraitFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// Written out instead of with `#[async_trait]`, which would box a second
// future around the inner one on every call: the inner future is returned
// as it is. (Method calls on an `Arc<dyn Publisher>` resolve to this impl.)
impl<T: Publisher + ?Sized> Publisher for Arc<T> {
    fn publish<'a, 'f>(&'a self, event: RawEvent) -> TraitFuture<'f, Result<(), BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        (**self).publish(event)
    }

    fn publish_all<'a, 'f>(&'a self, events: Vec<RawEvent>) -> TraitFuture<'f, Result<(), BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        (**self).publish_all(events)
    }

    fn close<'a, 'f>(&'a self) -> TraitFuture<'f, Result<(), BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        (**self).close()
    }

    fn health(&self) -> Health {
        (**self).health()
    }
}

impl<T: Subscriber + ?Sized> Subscriber for Arc<T> {
    fn subscribe<'a, 'f>(
        &'a self,
        options: SubscribeOptions,
    ) -> TraitFuture<'f, Result<Box<dyn Subscription>, BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        (**self).subscribe(options)
    }

    fn close<'a, 'f>(&'a self) -> TraitFuture<'f, Result<(), BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        (**self).close()
    }

    fn health(&self) -> Health {
        (**self).health()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::Attributes;

    /// Records settlements and how they arrived: `settle` (async) or
    /// `try_settle` (at once, when `immediate`).
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<(Settlement, &'static str)>>,
        fail_first: AtomicBool,
        immediate: bool,
    }

    impl Recorder {
        fn record(&self, settlement: Settlement, how: &'static str) -> Result<(), BusError> {
            if self.fail_first.swap(false, Ordering::SeqCst) {
                return Err(BusError::Closed);
            }
            self.calls.lock().unwrap().push((settlement, how));
            Ok(())
        }
    }

    #[async_trait]
    impl Acker for Arc<Recorder> {
        async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
            self.record(settlement, "settle")
        }

        fn try_settle(&self, settlement: Settlement) -> Result<Result<(), BusError>, Settlement> {
            if self.immediate {
                Ok(self.record(settlement, "try_settle"))
            } else {
                Err(settlement)
            }
        }
    }

    fn delivery(rec: &Arc<Recorder>) -> Delivery {
        let raw = RawEvent::new(Attributes::new("1", "/s", "t"), bytes::Bytes::new());
        Delivery::new(raw, 1, Box::new(Arc::clone(rec)))
    }

    fn recorder(immediate: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            immediate,
            ..Recorder::default()
        })
    }

    #[tokio::test]
    async fn only_the_first_settlement_reaches_the_backend() {
        for (immediate, how) in [(false, "settle"), (true, "try_settle")] {
            let rec = recorder(immediate);
            let d = delivery(&rec);
            d.ack().await.unwrap();
            d.ack().await.unwrap();
            d.nack().await.unwrap();
            d.dead_letter("late").await.unwrap();
            assert!(d.is_settled());
            assert_eq!(*rec.calls.lock().unwrap(), [(Settlement::Ack, how)]);
        }
    }

    #[tokio::test]
    async fn a_failed_settlement_can_be_retried() {
        for (immediate, how) in [(false, "settle"), (true, "try_settle")] {
            let rec = recorder(immediate);
            rec.fail_first.store(true, Ordering::SeqCst);
            let d = delivery(&rec);
            assert!(matches!(d.ack().await, Err(BusError::Closed)));
            assert!(!d.is_settled());
            d.ack().await.unwrap();
            assert_eq!(*rec.calls.lock().unwrap(), [(Settlement::Ack, how)]);
        }
    }

    #[test]
    fn subscribe_options_without_group_or_types_are_invalid() {
        assert!(
            SubscribeOptions::new("")
                .event_type("t")
                .validate()
                .is_err()
        );
        assert!(SubscribeOptions::new("g").validate().is_err());
        assert!(
            SubscribeOptions::new("g")
                .event_type("")
                .validate()
                .is_err()
        );
        let ok = SubscribeOptions::new("g")
            .event_types(["a", "b"])
            .prefetch(5);
        assert_eq!(ok.validate().ok(), Some(()));
        assert_eq!(ok.event_types, ["a", "b"]);
        assert_eq!(ok.prefetch, 5);
    }
}
