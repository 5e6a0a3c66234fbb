//! A consumer group's parking lot (`<group>.parking-lot`): putting a copy of
//! a message there with the reason ([`DEAD_LETTER_REASON_HEADER`]). Reading,
//! replaying and discarding what is parked is
//! [`RabbitDeadLetters`](crate::rabbitmq::RabbitDeadLetters)' job.

use lapin::{BasicProperties, types::ShortString};

use super::{amqp, settle::SettleContext};
use crate::error::BusError;

/// The header that carries why a message is in a parking lot.
pub const DEAD_LETTER_REASON_HEADER: &str = amqp::REASON_HEADER;

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
