//! [`NatsBus`]: the connection, and the publishers and subscribers made on it.
//!
//! A group's parked messages as a dead-letter queue
//! ([`NatsBus::dead_letter_queue`]) live in `dead_letter.rs`.

use std::sync::Arc;

use super::{
    config::NatsConfig, connection::Connection, dead_letter::NatsDeadLetters,
    publisher::NatsPublisher, subscriber::NatsSubscriber, wire,
};
use crate::{Health, error::BusError};

/// A NATS JetStream event bus: one connection, reconnecting on its own.
#[derive(Debug, Clone)]
pub struct NatsBus {
    connection: Arc<Connection>,
}

impl NatsBus {
    /// Connects, then creates the event and parking streams or checks the
    /// existing ones; fails when no server can be reached or a stream does
    /// not fit the configuration ([`BusError::StreamMismatch`]).
    pub async fn connect(config: NatsConfig) -> Result<Self, BusError> {
        Ok(Self {
            connection: Connection::connect(config).await?,
        })
    }

    /// A publisher (closing it closes only it).
    pub fn publisher(&self) -> NatsPublisher {
        NatsPublisher::new(Arc::clone(&self.connection))
    }

    /// A subscriber (closing it ends only its subscriptions).
    pub fn subscriber(&self) -> NatsSubscriber {
        NatsSubscriber::new(Arc::clone(&self.connection))
    }

    /// The settings.
    pub fn config(&self) -> &NatsConfig {
        &self.connection.config
    }

    /// The subject events of `event_type` are published to (`<prefix>.<type>`),
    /// for a foreign publisher; an error for a type that cannot be a subject.
    pub fn subject_for(&self, event_type: &str) -> Result<String, BusError> {
        wire::event_subject(&self.connection.config.subject_prefix, event_type)
    }

    /// The underlying client, for what the bus does not do (monitoring, requests).
    pub fn client(&self) -> &async_nats::Client {
        &self.connection.client
    }

    /// Up while connected, degraded while reconnecting (saying why), down once closed.
    pub fn health(&self) -> Health {
        self.connection.health()
    }

    /// Sends what is pending and closes the connection; publishers and
    /// subscriptions end. Idempotent.
    pub async fn close(&self) {
        self.connection.close().await;
    }

    /// The dead letters of a group (its subject in the parking stream) as a
    /// [`DeadLetterQueue`](crate::DeadLetterQueue): list, replay, discard.
    pub fn dead_letter_queue(&self, group: &str) -> NatsDeadLetters {
        NatsDeadLetters::new(Arc::clone(&self.connection), group)
    }
}
