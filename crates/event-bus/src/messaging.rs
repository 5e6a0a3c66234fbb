//! [`Messaging`]: how a backend names itself and its destination in
//! telemetry, after the OpenTelemetry messaging semantic conventions
//! (`messaging.system`, `messaging.destination.name`).
//!
//! ```
//! use tessera_event_bus::messaging::Messaging;
//!
//! let rabbit = Messaging::new("rabbitmq").with_destination("tessera.events");
//! assert_eq!(rabbit.destination_name("com.example.user.deleted.v1"), "tessera.events");
//! // Without a named destination (the in-memory bus), the event type is the destination.
//! let memory = Messaging::new("memory");
//! assert_eq!(memory.destination_name("com.example.user.deleted.v1"), "com.example.user.deleted.v1");
//! ```

use std::sync::Arc;

/// A backend's `messaging.system` and the destination its events go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Messaging {
    system: &'static str,
    destination: Option<Arc<str>>,
}

impl Default for Messaging {
    /// A backend that did not say: `messaging.system` = `unknown`.
    fn default() -> Self {
        Self::new("unknown")
    }
}

impl Messaging {
    /// A backend called `system` (`rabbitmq`, `memory`, `nats`), whose
    /// destination is the event type.
    pub const fn new(system: &'static str) -> Self {
        Self {
            system,
            destination: None,
        }
    }

    /// Names the destination every event goes to (RabbitMQ: the exchange).
    #[must_use]
    pub fn with_destination(mut self, name: impl Into<Arc<str>>) -> Self {
        self.destination = Some(name.into());
        self
    }

    /// `messaging.system`.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// `messaging.destination.name` of an event of type `event_type`.
    pub fn destination_name<'a>(&'a self, event_type: &'a str) -> &'a str {
        self.destination.as_deref().unwrap_or(event_type)
    }

    /// Whether the backend is RabbitMQ, whose routing key (the event type)
    /// is recorded as `messaging.rabbitmq.destination.routing_key`.
    pub fn is_rabbitmq(&self) -> bool {
        self.system == "rabbitmq"
    }
}
