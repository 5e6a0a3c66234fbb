//! The RabbitMQ backend (feature `rabbitmq`, lapin 4).
//!
//! [`RabbitBus::connect`] opens two connections (one for publishing, one
//! for consuming, so that the broker's flow control on publishers never
//! holds up acks) and declares the topology idempotently:
//!
//! - one durable **topic exchange** (default `tessera.events`); the routing
//!   key of every event is its `type`;
//! - per consumer group, one durable **queue** named after the group, bound
//!   by each event type it subscribes to, classic or quorum
//!   ([`QueueType`]; quorum queues get a delivery limit);
//! - per group, a **parking lot** `<group>.parking-lot` for dead letters,
//!   each with its reason in the `x-tessera-dead-letter-reason` header; the
//!   group's queue dead-letters rejected messages (and, on quorum queues,
//!   those over the delivery limit) there too;
//! - **retry queues** `<group>.retry.<ms>ms`, one per delay (rounded up to
//!   two significant digits), whose TTL dead-letters messages back to the
//!   group's queue.
//!
//! With [`RabbitConfig::queue_prefix`], every one of those queue names
//! starts with the prefix (`<prefix><group>`, `<prefix><group>.parking-lot`,
//! `<prefix><group>.retry.<ms>ms`), so that two environments or test runs
//! sharing a virtual host keep separate copies of the same group.
//!
//! Consumers ack manually; acks are grouped per channel into `basic.ack`
//! with `multiple` (sent within a few milliseconds, never covering a
//! delivery that is still in a handler or was nacked), so the broker and
//! lapin see one ack frame per batch rather than per message.
//!
//! Publishing is persistent and mandatory with publisher confirms; many
//! publishes are in flight on one channel at once. Messages are CloudEvents
//! in binary content mode ([`wire`](crate::wire), `docs/wire-format.md`).
//!
//! **Recovery**: when a connection drops (broker restart, network, a
//! force-close), the next operation reconnects with exponential backoff and
//! re-declares the exchange; a publish waiting for its confirm is published
//! again on the new connection (consumers dedupe on the event id) or fails
//! with [`BusError::Connection`] after the publish timeout; subscriptions
//! re-declare their queues and consume again, and the broker redelivers what
//! was unsettled on the old channel. [`RabbitBus::health`] says `Degraded`
//! while reconnecting. Each connection attempt has a deadline
//! ([`RabbitConfig::connect_timeout`]), so a peer that accepts connections but
//! never answers cannot stall recovery.
//!
//! [`BusError::Connection`]: crate::BusError::Connection
//!
//! **TLS**: `amqps://` URLs need the feature `rabbitmq-tls` (rustls with the
//! aws-lc-rs provider; without the feature such a URL is refused rather than
//! opened in plain text). The broker's certificate is checked against the
//! platform's trust store, plus the CA certificates given to
//! `RabbitConfig::tls_ca_certificates`; a client certificate for mutual TLS
//! (and RabbitMQ's `EXTERNAL` authentication) goes to
//! `RabbitConfig::tls_client_certificate`. Every reconnect uses the same
//! settings.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_event_bus::BusError> {
//! use std::sync::Arc;
//! use tessera_event_bus::{EventPublisher, Publisher, Subscriber};
//! use tessera_event_bus::rabbitmq::{QueueType, RabbitBus, RabbitConfig};
//!
//! let config = RabbitConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .exchange("tessera.events")
//!     .queue_type(QueueType::Quorum { delivery_limit: 20 });
//! let bus = RabbitBus::connect(config).await?;
//! let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! let subscriber: Arc<dyn Subscriber> = Arc::new(bus.subscriber());
//! assert!(bus.health().is_up());
//! # let _ = (events, subscriber);
//! # Ok(()) }
//! ```

mod ack;
pub(crate) mod amqp;
mod bus;
mod config;
mod connection;
mod dead_letter;
mod endpoint;
mod park;
mod publisher;
mod settle;
mod subscriber;
mod tls;
mod topology;

pub use self::{
    bus::RabbitBus,
    config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_EXCHANGE, QueueType, RabbitConfig},
    dead_letter::RabbitDeadLetters,
    park::DEAD_LETTER_REASON_HEADER,
    publisher::RabbitPublisher,
    subscriber::RabbitSubscriber,
};
