#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;
pub mod attributes;
pub mod bus;
pub mod codec;
pub mod dead_letter;
pub mod envelope;
pub mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "postgres")]
pub mod inbox;
#[cfg(feature = "memory")]
pub mod memory;
pub mod message;
pub mod messaging;
pub mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "postgres")]
pub mod outbox;
pub mod publisher;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod router;
mod task;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod trace_context;
pub mod wire;

pub use attributes::Attributes;
pub use bus::{
    Acker, Delivery, Health, HealthStatus, Publisher, Settlement, SubscribeOptions, Subscriber,
    Subscription,
};
pub use codec::{Codec, JsonCodec};
pub use dead_letter::{DeadLetter, DeadLetterId, DeadLetterQueue, UnreadableMessage};
pub use envelope::Envelope;
pub use error::{AttributeError, BoxError, BusError, CodecError, DecodeError, WireError};
pub use event::Event;
pub use message::RawEvent;
pub use publisher::EventPublisher;
pub use router::{EventContext, HandlerError, Router};

// docs/guides/event-bus.md, compiled as doctests so the guide stays true
// (it shows every backend, so with the features they need).
#[cfg(all(doctest, feature = "rabbitmq", feature = "postgres"))]
#[doc = include_str!("../../../docs/guides/event-bus.md")]
struct GuideEventBus;

// docs/operations.md (RabbitMQ, outbox and replica operations), compiled the
// same way should it show Rust.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/operations.md")]
struct OperationsDoctests;
