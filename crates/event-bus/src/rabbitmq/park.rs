//! A consumer group's parking lot (`<group>.parking-lot`): putting a copy of
//! a message there with the reason ([`DEAD_LETTER_REASON_HEADER`]), and
//! reading back what is parked ([`RabbitBus::parked`], [`ParkedMessage`]).

use std::time::Instant;

use bytes::Bytes;
use lapin::{BasicProperties, options::BasicGetOptions, types::ShortString};

use super::{amqp, bus::RabbitBus, connection::connection_error, settle::SettleContext, topology};
use crate::{RawEvent, error::BusError};

/// The header that carries why a message is in a parking lot.
pub const DEAD_LETTER_REASON_HEADER: &str = amqp::REASON_HEADER;

/// A message in a group's parking lot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedMessage {
    /// The event, or why the message is not a valid CloudEvent.
    pub event: Result<RawEvent, String>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u32,
    /// The message body as it is.
    pub body: Bytes,
}

impl RabbitBus {
    /// The messages in a group's parking lot, without removing them (they
    /// are fetched unacked, then handed back). `group` is the group's name
    /// as subscribed; the configured
    /// [queue prefix](crate::rabbitmq::RabbitConfig::queue_prefix) is added here.
    pub async fn parked(&self, group: &str) -> Result<Vec<ParkedMessage>, BusError> {
        let queue = topology::GroupQueues::new(&self.consuming.config, group)?.parking_lot;
        let deadline = Instant::now() + self.consuming.config.publish_timeout;
        let live = self.consuming.get(Some(deadline)).await?;
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(connection_error)?;
        let mut parked = Vec::new();
        loop {
            let got = match channel
                .basic_get(queue.clone(), BasicGetOptions { no_ack: false })
                .await
            {
                Ok(Some(got)) => got,
                Ok(None) => break,
                // No parking lot yet (404 closes the channel): nothing parked.
                Err(_) if parked.is_empty() && !channel.status().connected() => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(connection_error(e)),
            };
            let d = got.delivery;
            let body = Bytes::from(d.data);
            parked.push(ParkedMessage {
                event: amqp::from_amqp(&d.properties, body.clone()),
                reason: amqp::parked_reason(&d.properties),
                deliveries: amqp::parked_deliveries(&d.properties),
                body,
            });
        }
        // Closing the channel hands every fetched message back to the queue.
        let _ = channel.close(200, ShortString::from("peeked")).await;
        Ok(parked)
    }
}

/// Publishes a copy of a delivered message to its group's parking lot,
/// with `reason` in the [`DEAD_LETTER_REASON_HEADER`].
pub(super) async fn park(
    context: &SettleContext,
    properties: &BasicProperties,
    body: &[u8],
    routing_key: &ShortString,
    attempt: u32,
    reason: &str,
) -> Result<(), BusError> {
    let props = amqp::copy_with(
        properties,
        routing_key,
        attempt,
        Some((amqp::REASON_HEADER, reason)),
    );
    context
        .connector
        .publish(
            &ShortString::from(""),
            &context.queues.parking_lot,
            true,
            body,
            &props,
        )
        .await
}
