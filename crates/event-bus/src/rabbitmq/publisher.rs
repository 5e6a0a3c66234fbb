//! [`RabbitPublisher`]: persistent, mandatory, confirmed, pipelined publishing.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use futures_util::future::try_join_all;

use super::{amqp, connection::Connector};
use crate::{Health, Publisher, RawEvent, error::BusError};

/// The [`Publisher`] of a [`RabbitBus`](crate::rabbitmq::RabbitBus).
///
/// Each publish is persistent and mandatory on a confirm channel; it returns
/// `Ok` once the broker confirmed it, [`BusError::Unroutable`] when no queue
/// is bound to the event type, [`BusError::Rejected`] on a nack. Many
/// publishes (from many tasks, or [`publish_all`](Publisher::publish_all))
/// are in flight on the channel at once. A publish interrupted by a lost
/// connection is retried on the next one until the bus's publish timeout.
#[derive(Debug)]
pub struct RabbitPublisher {
    connector: Arc<Connector>,
    closed: AtomicBool,
}

impl RabbitPublisher {
    pub(crate) fn new(connector: Arc<Connector>) -> Self {
        Self {
            connector,
            closed: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl Publisher for RabbitPublisher {
    async fn publish(&self, event: RawEvent) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed);
        }
        event.attributes.validate()?;
        let routing_key = amqp::short(event.event_type(), "the event type")?;
        let properties = amqp::properties(&event)?;
        let exchange = amqp::short(&self.connector.config.exchange, "the exchange name")?;
        self.connector
            .publish(&exchange, &routing_key, true, &event.data, &properties)
            .await
    }

    /// Publishes all events concurrently on the confirm channel, then waits for every confirm.
    async fn publish_all(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        try_join_all(events.into_iter().map(|e| self.publish(e))).await?;
        Ok(())
    }

    async fn close(&self) -> Result<(), BusError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn health(&self) -> Health {
        if self.closed.load(Ordering::Acquire) {
            Health::down("publisher closed")
        } else {
            self.connector.health()
        }
    }

    fn messaging(&self) -> crate::messaging::Messaging {
        crate::messaging::Messaging::new("rabbitmq")
            .with_destination(self.connector.config.exchange.as_str())
    }
}
