//! The in-memory backend: broker semantics inside the process.
//!
//! [`MemoryBus`] behaves like the brokers do, so examples and tests exercise
//! the same code paths: consumer groups that each receive every event,
//! competing members within a group, ack / nack, redelivery of anything not
//! settled (including a [`crate::Delivery`] dropped unsettled),
//! delayed retry, an optional delivery limit, inspectable dead letters, and
//! bounded queues that make `publish` wait when a group's queue is full.
//! Waiting uses [`tokio::sync::Notify`]; nothing polls.
//!
//! Events live in memory only: they are gone when the process stops. Unlike
//! a broker channel, closing a subscription does not take back its
//! outstanding deliveries at once: each goes back to the queue when it is
//! dropped unsettled (and may still be settled until then).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bytes::Bytes;
//! use tessera_event_bus::{Attributes, Publisher, RawEvent, SubscribeOptions, Subscriber};
//! use tessera_event_bus::memory::{MemoryBus, MemoryConfig};
//!
//! let bus = MemoryBus::with_config(MemoryConfig::default().queue_capacity(100));
//! let mut sub = bus.subscriber()
//!     .subscribe(SubscribeOptions::new("billing").event_type("com.example.order.placed.v1"))
//!     .await?;
//! let event = RawEvent::new(Attributes::new("1", "/orders", "com.example.order.placed.v1"), Bytes::new());
//! bus.publisher().publish(event).await?;
//!
//! let delivery = sub.next().await?.unwrap();
//! delivery.dead_letter("cannot bill").await?;
//! let dead = bus.dead_letters("billing");
//! assert_eq!(dead.len(), 1);
//! assert_eq!(dead[0].reason, "cannot bill");
//! # Ok::<(), tessera_event_bus::BusError>(())
//! # }).unwrap();
//! ```

mod ack;
mod bus;
mod config;
mod dead_letter;
mod publisher;
mod signal;
mod state;
mod subscriber;
mod topic;

pub use self::bus::MemoryBus;
pub use self::config::MemoryConfig;
pub use self::dead_letter::MemoryDeadLetters;
pub use self::publisher::MemoryPublisher;
pub use self::subscriber::MemorySubscriber;
pub use self::topic::topic_matches;
/// The dead letters' type, shared by every backend (was a memory-only type).
pub use crate::dead_letter::DeadLetter;

/// How long [`MemoryBus`] tests may wait; not a performance bound.
#[cfg(test)]
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests;
