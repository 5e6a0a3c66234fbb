//! The mapping between [`RawEvent`]s and AMQP messages (properties, headers, body).

use bytes::Bytes;
use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

use crate::{RawEvent, error::BusError, wire};

/// AMQP delivery mode 2: the broker writes the message to disk.
pub(crate) const PERSISTENT: u8 = 2;

/// Deliveries before a message went through a retry queue (classic queues keep no count).
pub(crate) const DELIVERIES_HEADER: &str = "x-tessera-deliveries";
/// Why a message is in the parking lot.
pub(crate) const REASON_HEADER: &str = "x-tessera-dead-letter-reason";
/// The routing key (event type) a parked or retried message was first published with.
pub(crate) const ROUTING_KEY_HEADER: &str = "x-tessera-routing-key";
/// Returns counted by quorum queues.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

pub(crate) fn short(value: &str, what: &str) -> Result<ShortString, BusError> {
    ShortString::try_new(value).map_err(|_| {
        BusError::Unsupported(format!(
            "{what} is {} bytes long; amqp allows at most 255",
            value.len()
        ))
    })
}

/// The properties of an event in binary content mode.
pub(crate) fn properties(event: &RawEvent) -> Result<BasicProperties, BusError> {
    let msg = wire::to_binary(event);
    let mut headers = FieldTable::default();
    for (name, value) in msg.headers {
        headers.insert(
            short(&name, "a header name")?,
            AMQPValue::LongString(LongString::from(value)),
        );
    }
    let a = &event.attributes;
    let mut props = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    // The `ce-` headers are authoritative; these properties are conveniences
    // for tools, so a value too long for them is left out rather than refused.
    if let Ok(id) = ShortString::try_new(a.id.as_str()) {
        props = props.with_message_id(id);
    }
    if let Ok(ty) = ShortString::try_new(a.ty.as_str()) {
        props = props.with_type(ty);
    }
    if let Some(time) = a.time
        && let Ok(secs) = u64::try_from(time.unix_timestamp())
    {
        props = props.with_timestamp(secs);
    }
    if let Some(ct) = &msg.content_type {
        props = props.with_content_type(short(ct, "the datacontenttype")?);
    }
    Ok(props)
}

/// A header value as text, for attributes; `None` for values no attribute can hold.
fn header_text(value: &AMQPValue) -> Option<Result<String, ()>> {
    Some(Ok(match value {
        AMQPValue::LongString(s) => {
            return Some(String::from_utf8(s.as_bytes().to_vec()).map_err(|_| ()));
        }
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::ByteArray(b) => {
            return Some(String::from_utf8(b.as_slice().to_vec()).map_err(|_| ()));
        }
        _ => return None,
    }))
}

fn header_u32(headers: Option<&FieldTable>, name: &str) -> u32 {
    let value = headers.and_then(|h| h.inner().get(name));
    match value {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortUInt(n)) => u32::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortShortUInt(n)) => u32::from(*n),
        Some(AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Which delivery of the event to its group this is, starting at 1.
pub(crate) fn attempt(props: &BasicProperties, redelivered: bool) -> u32 {
    let headers = props.headers().as_ref();
    let before_retry = header_u32(headers, DELIVERIES_HEADER);
    let returns = header_u32(headers, DELIVERY_COUNT_HEADER).max(u32::from(redelivered));
    before_retry.saturating_add(1).saturating_add(returns)
}

/// How often a parked message had been delivered to its group: the count
/// its copy carries (0 when the broker itself dead-lettered it). A quorum
/// parking lot's own `x-delivery-count` is left out: it counts the returns of
/// the [dead-letter queue](crate::rabbitmq::RabbitDeadLetters)'s peeks, not deliveries.
pub(crate) fn parked_deliveries(props: &BasicProperties) -> u32 {
    header_u32(props.headers().as_ref(), DELIVERIES_HEADER)
}

/// Why a message is in a parking lot: the reason its copy carries, else the
/// broker's own (a message it dead-lettered), else nothing.
pub(crate) fn parked_reason(props: &BasicProperties) -> String {
    let text = |name: &str| match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    };
    text(REASON_HEADER)
        .or_else(|| {
            text("x-first-death-reason").map(|r| format!("dead-lettered by the broker: {r}"))
        })
        .unwrap_or_default()
}

/// A copy of a delivered message with extra headers, for a retry queue or the parking lot.
pub(crate) fn copy_with(
    properties: &BasicProperties,
    routing_key: &ShortString,
    attempt: u32,
    extra: Option<(&str, &str)>,
) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        DELIVERIES_HEADER.into(),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    if !headers.contains_key(ROUTING_KEY_HEADER) {
        headers.insert(
            ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(LongString::from(routing_key.as_str())),
        );
    }
    if let Some((name, value)) = extra {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(PERSISTENT)
}

/// Reads a delivered message; the error is the reason it is parked.
pub(crate) fn from_amqp(props: &BasicProperties, body: Bytes) -> Result<RawEvent, String> {
    let mut headers: Vec<(&str, String)> = Vec::new();
    if let Some(table) = props.headers() {
        for (name, value) in table {
            let name = name.as_str();
            let is_attribute = name
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case(wire::BINARY_HEADER_PREFIX))
                || wire::AMQP_HEADER_PREFIXES.iter().any(|p| {
                    name.get(..p.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(p))
                });
            if !is_attribute {
                continue;
            }
            match header_text(value) {
                Some(Ok(text)) => headers.push((name, text)),
                Some(Err(())) => return Err(format!("header `{name}` is not valid utf-8")),
                None => return Err(format!("header `{name}` is not a string")),
            }
        }
    }
    let content_type = props.content_type().as_ref().map(ShortString::as_str);
    wire::from_message(
        content_type,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        body,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attributes;

    fn event() -> RawEvent {
        let mut a = Attributes::new("e-1", "/users", "com.example.user.registered.v1");
        a.time = Some(wire::parse_time("2025-01-02T03:04:05Z").unwrap());
        a.datacontenttype = Some("application/json".to_owned());
        a.subject = Some("u-1".to_owned());
        a.set_correlation_id("c-1");
        RawEvent::new(a, Bytes::from_static(b"{}"))
    }

    #[test]
    fn properties_carry_the_amqp_mapping() {
        let props = properties(&event()).unwrap();
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.message_id().as_ref().map(ShortString::as_str),
            Some("e-1")
        );
        assert_eq!(
            props.kind().as_ref().map(ShortString::as_str),
            Some("com.example.user.registered.v1")
        );
        assert_eq!(props.timestamp(), &Some(1_735_787_045));
        assert_eq!(
            props.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        let headers = props.headers().as_ref().unwrap();
        assert!(headers.contains_key("ce-id"));
        assert!(headers.contains_key("ce-correlationid"));
        assert_eq!(
            from_amqp(&props, Bytes::from_static(b"{}")).unwrap(),
            event()
        );
    }

    #[test]
    fn long_values_are_refused_or_left_out_without_panicking() {
        let mut e = event();
        e.attributes.id = "x".repeat(300);
        let props = properties(&e).unwrap();
        assert_eq!(props.message_id(), &None, "too long for message_id");
        assert_eq!(from_amqp(&props, e.data.clone()).unwrap().id(), e.id());
        e.attributes.datacontenttype = Some(format!("application/{}", "x".repeat(300)));
        assert!(matches!(properties(&e), Err(BusError::Unsupported(_))));
    }

    #[test]
    fn garbage_headers_give_a_reason() {
        let mut table = FieldTable::default();
        table.insert("ce-id".into(), AMQPValue::FieldTable(FieldTable::default()));
        let props = BasicProperties::default().with_headers(table);
        assert_eq!(
            from_amqp(&props, Bytes::new()).unwrap_err(),
            "header `ce-id` is not a string"
        );
        let mut table = FieldTable::default();
        table.insert(
            "ce-id".into(),
            AMQPValue::LongString(vec![0xff, 0xfe].into()),
        );
        let props = BasicProperties::default().with_headers(table);
        assert_eq!(
            from_amqp(&props, Bytes::new()).unwrap_err(),
            "header `ce-id` is not valid utf-8"
        );
        let reason = from_amqp(
            &BasicProperties::default(),
            Bytes::from_static(b"\x00garbage"),
        )
        .unwrap_err();
        assert!(reason.contains("`specversion` is missing"), "{reason}");
    }

    #[test]
    fn non_string_extension_headers_are_read_as_text() {
        let props = properties(&event()).unwrap();
        let mut table = props.headers().clone().unwrap();
        table.insert("ce-priority".into(), AMQPValue::LongInt(3));
        table.insert(
            "x-other".into(),
            AMQPValue::FieldTable(FieldTable::default()),
        );
        let props = props.with_headers(table);
        let raw = from_amqp(&props, Bytes::new()).unwrap();
        assert_eq!(raw.attributes.extension("priority"), Some("3"));
    }

    #[test]
    fn attempts_count_redeliveries_retries_and_quorum_returns() {
        let props = BasicProperties::default();
        assert_eq!(attempt(&props, false), 1);
        assert_eq!(attempt(&props, true), 2);
        let mut table = FieldTable::default();
        table.insert(DELIVERIES_HEADER.into(), AMQPValue::LongLongInt(2));
        let retried = BasicProperties::default().with_headers(table.clone());
        assert_eq!(attempt(&retried, false), 3);
        table.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(2));
        let quorum = BasicProperties::default().with_headers(table);
        assert_eq!(attempt(&quorum, true), 5);
    }

    #[test]
    fn a_parked_message_counts_the_deliveries_its_copy_carries_not_the_parking_lots_returns() {
        let mut table = FieldTable::default();
        table.insert(DELIVERIES_HEADER.into(), AMQPValue::LongLongInt(3));
        // A quorum parking lot counts each peek that handed the message back.
        table.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(4));
        let parked = BasicProperties::default().with_headers(table);
        assert_eq!(parked_deliveries(&parked), 3);
        // Dead-lettered by the broker itself: no copy, no count.
        assert_eq!(parked_deliveries(&BasicProperties::default()), 0);
    }
}
