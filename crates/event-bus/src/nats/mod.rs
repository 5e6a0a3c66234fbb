//! The NATS JetStream backend (feature `nats`, async-nats).
//!
//! [`NatsBus::connect`] opens one connection (the client reconnects on its
//! own, with the configured backoff) and creates, or checks, two streams:
//!
//! - the **event stream** (default `TESSERA_EVENTS`) capturing
//!   `<prefix>.>` (default prefix `tessera.events`): an event of type `t`
//!   is published to `<prefix>.t` with its id as `Nats-Msg-Id`, so the
//!   stream's duplicate window drops a republished event; an existing stream
//!   whose subjects, retention, replicas or duplicate window do not fit is a
//!   [`BusError::StreamMismatch`](crate::BusError::StreamMismatch);
//! - the **parking stream** (default `<stream>_PARKING`) capturing
//!   `<parking prefix>.>` (default `tessera.parking`): a group's dead letters
//!   go to `<parking prefix>.<group>` with the reason in the
//!   [`DEAD_LETTER_REASON_HEADER`].
//!
//! Per consumer group, one **durable pull consumer** per event type it is
//! bound to (explicit ack, `ack_wait`, `max_ack_pending` = the prefetch,
//! delivering what is published from the moment the group binds the type),
//! and one for `<prefix>.$replay.<group>`, where the group's replayed dead
//! letters go. Every member of the group pulls from all of them; members
//! compete. (One consumer per type because nats-server before 2.10 filters
//! a consumer on one subject.)
//!
//! Settling: an ack is queued and sent by the subscription's ack task; a
//! requeue is a NAK; [`retry_after`](crate::Delivery::retry_after) a NAK with
//! delay; a dead letter a copy in the parking stream, then `+TERM`. A delivery
//! still unsettled gets an in-progress ack every half `ack_wait`, so a long
//! handler keeps its event. The server's `max_deliver` stays unlimited (it
//! would stop delivering silently); an event delivered more than
//! [`NatsConfig::max_deliver`] times is parked with the reason instead. A
//! message that is not a valid CloudEvent is parked the same way.
//!
//! **Recovery**: a publish whose ack does not come (connection lost,
//! timeout) is sent again with the same `Nats-Msg-Id` until the publish
//! timeout; one that finds no stream creates the streams again. Pulling
//! resumes after a reconnect; a subscription whose consumer was deleted
//! creates it again from the oldest event it had not settled, and one whose
//! stream was deleted creates the stream and reads the new one from its
//! start (the events the deleted stream held are gone: that is logged as an
//! error).
//!
//! Unlike RabbitMQ, the stream keeps an event whether or not a group is
//! bound to its type, so publishing never fails with
//! [`BusError::Unroutable`](crate::BusError::Unroutable): with
//! [`Retention::Limits`] a group bound later can still be pointed at it.
//!
//! Messages are CloudEvents in the NATS binding's binary mode
//! ([`wire`](crate::wire), `docs/wire-format.md`): `ce-` headers with
//! percent-encoded values, `datacontenttype` as `ce-datacontenttype` and as
//! `Content-Type`; structured mode is read too.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_event_bus::BusError> {
//! use std::sync::Arc;
//! use tessera_event_bus::{EventPublisher, Subscriber};
//! use tessera_event_bus::nats::{NatsBus, NatsConfig};
//!
//! let bus = NatsBus::connect(NatsConfig::from_env().stream("TESSERA_EVENTS")).await?;
//! let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! let subscriber: Arc<dyn Subscriber> = Arc::new(bus.subscriber());
//! assert!(bus.health().is_up());
//! # let _ = (events, subscriber);
//! # Ok(()) }
//! ```

mod ack;
mod bus;
mod config;
mod connection;
mod consumer;
mod dead_letter;
mod park;
mod publish_future;
mod publisher;
mod pull;
mod settle;
mod stream;
mod subscriber;
mod wire;

pub use self::{
    bus::NatsBus,
    config::{DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, DEFAULT_URL, NatsConfig, Retention},
    dead_letter::NatsDeadLetters,
    park::DEAD_LETTER_REASON_HEADER,
    publisher::NatsPublisher,
    subscriber::NatsSubscriber,
};
