//! Arbitrary AMQP deliveries (content type, header table, body) through the
//! RabbitMQ subscriber's CloudEvents reader: an error (the park reason) or
//! an event that the writer writes back to the same event; never a panic.
//!
//! Input, so that recorded messages make readable seeds:
//!
//! ```text
//! <content type, or nothing for none>
//! <tag><name>=<value>      one header per line; tag S long string, s short
//!                          string, b bool, i integer, f float, t timestamp,
//!                          x byte array, a array (values split on ','),
//!                          T table (name:value pairs split on ','), v void
//!                          (blank line)
//! <body>
//! ```
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tessera_event_bus::fuzzing::{
    AMQPValue, ByteArray, FieldArray, FieldTable, LongString, ShortString, amqp_attempt,
    amqp_delivery,
};
use tessera_event_bus::wire;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn number<T: std::str::FromStr + Default>(bytes: &[u8]) -> T {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_default()
}

/// An AMQP value from a tag and its text. Integers pick the narrowest type
/// by the value's length, so the fuzzer reaches every integer variant.
fn value(tag: u8, raw: &[u8], depth: u8) -> Option<AMQPValue> {
    Some(match tag {
        b'S' => AMQPValue::LongString(LongString::from(raw.to_vec())),
        b's' => AMQPValue::ShortString(ShortString::try_new(text(raw)).ok()?),
        b'b' => AMQPValue::Boolean(raw.first().is_some_and(|&b| b == b't' || b == b'1')),
        b'i' => match raw.len() {
            0..=2 => AMQPValue::ShortShortInt(number(raw)),
            3 => AMQPValue::ShortShortUInt(number(raw)),
            4 => AMQPValue::ShortInt(number(raw)),
            5 => AMQPValue::ShortUInt(number(raw)),
            6..=9 => AMQPValue::LongInt(number(raw)),
            10 => AMQPValue::LongUInt(number(raw)),
            _ => AMQPValue::LongLongInt(number(raw)),
        },
        b'f' if raw.len() < 8 => AMQPValue::Float(number(raw)),
        b'f' => AMQPValue::Double(number(raw)),
        b't' => AMQPValue::Timestamp(number(raw)),
        b'x' => AMQPValue::ByteArray(ByteArray::from(raw)),
        b'v' => AMQPValue::Void,
        b'a' if depth < 2 => AMQPValue::FieldArray(FieldArray::from(
            raw.split(|&b| b == b',')
                .filter_map(|item| {
                    let (&tag, rest) = item.split_first()?;
                    value(tag, rest, depth + 1)
                })
                .collect::<Vec<_>>(),
        )),
        b'T' if depth < 2 => {
            AMQPValue::FieldTable(table(raw.split(|&b| b == b','), b':', depth + 1))
        }
        _ => return None,
    })
}

fn table<'a>(entries: impl Iterator<Item = &'a [u8]>, separator: u8, depth: u8) -> FieldTable {
    let mut table = FieldTable::default();
    for entry in entries {
        let Some((&tag, rest)) = entry.split_first() else {
            continue;
        };
        let (name, raw) = match rest.iter().position(|&b| b == separator) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &b""[..]),
        };
        // A name longer than 255 bytes cannot be on the wire.
        let Ok(name) = ShortString::try_new(text(name)) else {
            continue;
        };
        if let Some(value) = value(tag, raw, depth) {
            table.insert(name, value);
        }
    }
    table
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &b""[..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let content_type = lines
        .next()
        .filter(|ct| !ct.is_empty())
        .and_then(|ct| ShortString::try_new(text(ct)).ok());
    let headers = table(lines, b'=', 0);
    assert!(amqp_attempt(headers.clone(), body.first() == Some(&b'r')) >= 1);
    let Ok(event) = amqp_delivery(content_type, headers, Bytes::copy_from_slice(body)) else {
        return;
    };
    // A valid event: the writer writes it, and reading that back gives it again.
    let written = wire::to_binary(&event);
    let read = wire::from_message(
        written.content_type.as_deref(),
        written
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        written.body.clone(),
    )
    .unwrap_or_else(|e| panic!("an event read from a delivery does not read back: {e}; {event:?}"));
    assert_eq!(read, event);
});
