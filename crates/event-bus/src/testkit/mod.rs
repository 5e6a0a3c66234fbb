//! The conformance kit: one suite every backend runs (feature `testkit`).
//!
//! Modelled on Watermill's universal pub/sub tests. A backend implements
//! [`TestBackend`] (how to get a publisher, a subscriber, its
//! [dead letters](crate::DeadLetterQueue), and which [`Capabilities`] it
//! declares), then expands
//! [`conformance_tests!`](crate::conformance_tests) in an integration test
//! file: one `#[tokio::test]` per case, so `cargo test` can filter a case by
//! name. Cases that need a capability the backend does not declare return
//! early. Every case uses its own consumer groups and event types, so cases
//! can run in parallel against one broker.
//!
//! The cases come in two sets: [`pubsub`], the publish / subscribe contract
//! a backend's [`Publisher`] and [`Subscriber`] keep, and [`router`], the
//! consumer router's behaviour (retries, dead letters, shutdown) on top of
//! that backend.
//!
//! The calling crate needs `tokio` with the `macros` and `rt-multi-thread`
//! features among its dev-dependencies.
//!
//! ```
//! use tessera_event_bus::testkit::{MemoryTestBackend, TestBackend};
//!
//! let backend = MemoryTestBackend::new();
//! assert!(backend.capabilities().ordering_per_subject);
//! // In tests/conformance.rs:
//! // tessera_event_bus::conformance_tests!(tessera_event_bus::testkit::MemoryTestBackend::new());
//! ```

#[cfg(feature = "rabbitmq")]
mod cluster;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "nats")]
mod nats;
pub mod pubsub;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
mod relay;
pub mod router;
mod support;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

#[cfg(feature = "rabbitmq")]
pub use self::cluster::{NodesGuard, RabbitCluster};
#[cfg(feature = "memory")]
pub use self::memory::MemoryTestBackend;
#[cfg(feature = "nats")]
pub use self::nats::{NatsTestBackend, nats_url};
#[cfg(feature = "rabbitmq")]
pub use self::rabbitmq::{RabbitTestBackend, amqp_url, force_close_connections};
pub use self::relay::TcpRelay;
use crate::{DeadLetterQueue, Publisher, Subscriber};

/// What a backend promises beyond the common contract; cases adapt to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// A single consumer sees the events of one subject in publish order.
    pub ordering_per_subject: bool,
    /// Connections come back after being force-closed, losing nothing confirmed.
    pub reconnect: bool,
}

impl Capabilities {
    /// Nothing beyond the common contract.
    pub fn none() -> Self {
        Self {
            ordering_per_subject: false,
            reconnect: false,
        }
    }

    /// Declares per-subject ordering for a single consumer.
    #[must_use]
    pub fn with_ordering_per_subject(mut self) -> Self {
        self.ordering_per_subject = true;
        self
    }

    /// Declares recovery from dropped connections.
    #[must_use]
    pub fn with_reconnect(mut self) -> Self {
        self.reconnect = true;
        self
    }
}

/// A backend under test.
#[async_trait]
pub trait TestBackend: Send + Sync + 'static {
    /// What the backend promises.
    fn capabilities(&self) -> Capabilities;

    /// A publisher (a new connection or a shared one).
    async fn publisher(&self) -> Arc<dyn Publisher>;

    /// A new subscriber; the kit closes it when a case ends.
    async fn subscriber(&self) -> Arc<dyn Subscriber>;

    /// The dead letters of a consumer group (the backend's own
    /// [`DeadLetterQueue`]).
    fn dead_letter_queue(&self, group: &str) -> Arc<dyn DeadLetterQueue>;

    /// Force-closes the backend's broker connections (for the reconnect case).
    async fn break_connections(&self) {}

    /// How long a case waits for something that should happen; not a
    /// performance bound, only a guard against hanging.
    fn patience(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// How long a case watches for something that must not happen.
    fn quiet_period(&self) -> Duration {
        Duration::from_millis(200)
    }
}

/// Expands to one `#[tokio::test]` per conformance case for a backend.
///
/// The argument is an expression evaluated in each test (inside an async fn,
/// so it may `.await`) whose value implements [`TestBackend`].
///
/// Attributes after the expression go on every test, for example
/// `#[ignore = "needs RabbitMQ"]` for a backend that needs a broker.
///
/// ```ignore
/// tessera_event_bus::conformance_tests!(tessera_event_bus::testkit::MemoryTestBackend::new());
/// tessera_event_bus::conformance_tests!(
///     tessera_event_bus::testkit::RabbitTestBackend::new().await,
///     #[ignore = "needs RabbitMQ"]
/// );
/// ```
#[macro_export]
macro_rules! conformance_tests {
    // One case at a time, so the attributes repeat once per test.
    (@cases [$($attr:tt)*] ($backend:expr) $kit:ident; $case:ident $(, $rest:ident)* $(,)?) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attr)*
        async fn $case() {
            $crate::testkit::$kit::$case(&$backend).await;
        }
        $crate::conformance_tests!(@cases [$($attr)*] ($backend) $kit; $($rest),*);
    };
    (@cases [$($attr:tt)*] ($backend:expr) $kit:ident; $(,)?) => {};
    ($backend:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::conformance_tests!(@cases [$(#[$meta])*] ($backend) pubsub;
            publish_subscribe,
            many_events_in_one_go,
            consumer_groups_each_get_a_copy,
            competing_consumers_get_each_event_once,
            nack_redelivers,
            no_ack_redelivers_after_consumer_closes,
            delayed_retry_redelivers_later,
            dead_letter_keeps_the_reason,
            dead_letters_replay_to_their_group_and_discard,
            settling_is_idempotent,
            ordering_per_subject_with_a_single_consumer,
            concurrent_publishers_lose_nothing,
            close_while_consuming_ends_the_subscription,
            reconnect_loses_nothing
        );
        $crate::conformance_tests!(@cases [$(#[$meta])*] ($backend) router;
            transient_error_retries_then_succeeds,
            dead_letter_after_n_attempts_with_the_reason,
            permanent_error_dead_letters_at_once,
            undecodable_payload_dead_letters,
            unhandled_event_type_is_acked,
            shutdown_drains_in_flight_handlers
        );
    };
}
