//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): thin
//! wrappers over the RabbitMQ backend's private delivery reader, so that the
//! fuzzers run the code a delivery really goes through. Not a stable API.

use bytes::Bytes;
use lapin::BasicProperties;

use crate::RawEvent;

/// The AMQP types a delivery's header table is made of.
pub use lapin::types::{AMQPValue, ByteArray, FieldArray, FieldTable, LongString, ShortString};

/// A delivery with this content type, header table and body, read as the
/// subscriber reads it: the event, or the reason it would be parked.
pub fn amqp_delivery(
    content_type: Option<ShortString>,
    headers: FieldTable,
    body: Bytes,
) -> Result<RawEvent, String> {
    let mut props = BasicProperties::default().with_headers(headers);
    if let Some(content_type) = content_type {
        props = props.with_content_type(content_type);
    }
    crate::rabbitmq::amqp::from_amqp(&props, body)
}

/// The delivery attempt the subscriber counts for this header table.
pub fn amqp_attempt(headers: FieldTable, redelivered: bool) -> u32 {
    let props = BasicProperties::default().with_headers(headers);
    crate::rabbitmq::amqp::attempt(&props, redelivered)
}
