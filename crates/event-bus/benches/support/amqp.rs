//! What the RabbitMQ benches' raw-lapin side shares: the AMQP properties a
//! Tessera publish carries, so raw and Tessera send the same message.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, LongString},
};
use tessera_event_bus::{RawEvent, wire};

/// The properties a Tessera publish carries, for the raw side of a comparison.
pub(crate) fn raw_properties(event: &RawEvent) -> BasicProperties {
    let msg = wire::to_binary(event);
    let mut headers = FieldTable::default();
    for (k, v) in msg.headers {
        headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(headers)
}
