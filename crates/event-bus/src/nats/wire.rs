//! The mapping between [`RawEvent`]s and NATS messages: the CloudEvents NATS
//! binding in binary mode (`ce-` headers with percent-encoded values,
//! `datacontenttype` as `ce-datacontenttype` and as `Content-Type`), with
//! structured mode accepted on read, through the crate's [`wire`] module.
//! Also the subjects events travel on, and the headers a parked copy carries.

use std::borrow::Cow;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::{RawEvent, error::BusError, wire};

/// The data's media type (`datacontenttype`), as the NATS binding names it.
pub(crate) const CONTENT_TYPE: &str = "Content-Type";
/// `datacontenttype` as the binding's `ce-` header.
pub(crate) const CE_CONTENT_TYPE: &str = "ce-datacontenttype";
/// JetStream's de-duplication header: the event id.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";
/// Why a message is in the parking stream.
pub(crate) const REASON_HEADER: &str = "Tessera-Dead-Letter-Reason";
/// How often a parked message had been delivered to its group.
pub(crate) const DELIVERIES_HEADER: &str = "Tessera-Deliveries";
/// The subject a parked message was first published to.
pub(crate) const SUBJECT_HEADER: &str = "Tessera-Subject";

/// What the binding percent-encodes in a `ce-` header value: space, `"`,
/// `%` and control characters; every byte outside ASCII is encoded as well.
const ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// A `ce-` header value as the binding writes it.
fn encode(value: &str) -> Cow<'_, str> {
    utf8_percent_encode(value, ENCODED).into()
}

/// A `ce-` header value as the binding reads it: a double-quoted string
/// unquoted first (older senders), then one round of percent-decoding,
/// which must give UTF-8.
fn decode<'a>(name: &str, value: &'a str) -> Result<Cow<'a, str>, String> {
    let invalid = || format!("header `{name}` is not percent-encoded UTF-8");
    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
    if !quoted && !value.contains('%') {
        // Nothing to decode (most values): a header value is UTF-8 already.
        return Ok(Cow::Borrowed(value));
    }
    if !quoted {
        return percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| invalid());
    }
    let mut unquoted = String::with_capacity(value.len());
    let mut chars = value[1..value.len() - 1].chars();
    while let Some(c) = chars.next() {
        unquoted.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    let decoded = percent_decode_str(&unquoted)
        .decode_utf8()
        .map_err(|_| invalid())?
        .into_owned();
    Ok(Cow::Owned(decoded))
}

/// The token that starts a group's replay subject (`<prefix>.$replay.<group>`):
/// never the first token of an event type.
const REPLAY_TOKEN: &str = "$replay";

/// Checks that `tail` can follow a prefix in a subject a publisher sends to:
/// dot-separated non-empty tokens, no whitespace, no wildcards.
pub(crate) fn check_subject_tail(tail: &str, what: &str) -> Result<(), BusError> {
    let bad = |why: &str| Err(BusError::Unsupported(format!("{what} `{tail}` {why}")));
    if tail.is_empty() {
        return bad("is empty");
    }
    if tail.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace; nats subjects cannot");
    }
    if tail.split('.').any(str::is_empty) {
        return bad(
            "has an empty token (`..`, or a leading or trailing `.`); nats subjects cannot",
        );
    }
    if tail.contains(['*', '>']) {
        return bad("contains `*` or `>`, which are wildcards in nats subjects");
    }
    if tail.starts_with('$') {
        return bad("starts with `$`, reserved for tessera's replay subjects");
    }
    Ok(())
}

/// The subject of an event type: `<prefix>.<type>`.
pub(crate) fn event_subject(prefix: &str, event_type: &str) -> Result<String, BusError> {
    check_subject_tail(event_type, "the event type")?;
    Ok(format!("{prefix}.{event_type}"))
}

/// The subject a group's replayed dead letters go to: `<prefix>.$replay.<group>`,
/// in the event stream but outside every event type's subject.
pub(crate) fn replay_subject(prefix: &str, group: &str) -> String {
    format!("{prefix}.{REPLAY_TOKEN}.{group}")
}

/// The subject of a group's parked messages: `<parking prefix>.<group>`.
pub(crate) fn parking_subject(parking_prefix: &str, group: &str) -> String {
    format!("{parking_prefix}.{group}")
}

fn header_name(name: &str) -> Result<HeaderName, BusError> {
    HeaderName::try_from(name)
        .map_err(|_| BusError::Unsupported(format!("`{name}` cannot be a nats header name")))
}

/// The headers of an event in binary mode, with its id as `Nats-Msg-Id`:
/// every attribute a `ce-` header with its value percent-encoded,
/// `datacontenttype` also as `Content-Type` (as it is, for readers that take
/// the data's type from there).
pub(crate) fn headers(event: &RawEvent) -> Result<HeaderMap, BusError> {
    // The attributes in the order and under the names `wire::to_binary`
    // gives them, written straight into the map: the names of the context
    // attributes are static, and a value that needs no encoding is copied
    // once (this runs for every publish).
    const SPECVERSION: HeaderName = HeaderName::from_static("ce-specversion");
    const ID: HeaderName = HeaderName::from_static("ce-id");
    const SOURCE: HeaderName = HeaderName::from_static("ce-source");
    const TYPE: HeaderName = HeaderName::from_static("ce-type");
    const TIME: HeaderName = HeaderName::from_static("ce-time");
    const SUBJECT: HeaderName = HeaderName::from_static("ce-subject");
    const DATASCHEMA: HeaderName = HeaderName::from_static("ce-dataschema");
    const DATACONTENTTYPE: HeaderName = HeaderName::from_static(CE_CONTENT_TYPE);
    const CONTENT_TYPE_NAME: HeaderName = HeaderName::from_static(CONTENT_TYPE);
    const MSG_ID_NAME: HeaderName = HeaderName::from_static(MSG_ID);
    fn put(
        headers: &mut HeaderMap,
        name: HeaderName,
        value: &str,
        encoded: bool,
    ) -> Result<(), BusError> {
        let value = if encoded {
            encode(value)
        } else {
            Cow::Borrowed(value)
        };
        let value = HeaderValue::try_from(value.into_owned()).map_err(|_| {
            BusError::Unsupported(format!(
                "header `{name}` holds a line break, which nats headers cannot carry"
            ))
        })?;
        headers.insert(name, value);
        Ok(())
    }
    let a = &event.attributes;
    let mut headers = HeaderMap::new();
    put(&mut headers, SPECVERSION, &a.specversion, true)?;
    put(&mut headers, ID, &a.id, true)?;
    put(&mut headers, SOURCE, &a.source, true)?;
    put(&mut headers, TYPE, &a.ty, true)?;
    if let Some(time) = a.time {
        put(&mut headers, TIME, &wire::format_time(time), true)?;
    }
    if let Some(subject) = &a.subject {
        put(&mut headers, SUBJECT, subject, true)?;
    }
    if let Some(schema) = &a.dataschema {
        put(&mut headers, DATASCHEMA, schema, true)?;
    }
    for (name, value) in &a.extensions {
        let name = format!("{}{name}", wire::BINARY_HEADER_PREFIX);
        let name = header_name(&name)?;
        put(&mut headers, name, value, true)?;
    }
    if let Some(ct) = &a.datacontenttype {
        put(&mut headers, DATACONTENTTYPE, ct, true)?;
        put(&mut headers, CONTENT_TYPE_NAME, ct, false)?;
    }
    put(&mut headers, MSG_ID_NAME, event.id(), false)?;
    Ok(headers)
}

/// Reads a delivered message; the error is the reason it is parked.
///
/// `Content-Type: application/cloudevents+json` means structured mode;
/// otherwise the attributes come from the `ce-` headers (percent-decoded),
/// and `datacontenttype` from `ce-datacontenttype`, else from `Content-Type`.
pub(crate) fn from_nats(headers: Option<&HeaderMap>, payload: Bytes) -> Result<RawEvent, String> {
    // One pass over the headers, each attribute straight into the builder.
    // What the builder refuses counts only in binary mode, which is known
    // at the end (from `Content-Type`): the first refusal waits until then.
    let mut builder = wire::AttributesBuilder::default();
    let mut refused = None;
    let mut content_type = None;
    let mut ce_content_type = false;
    if let Some(map) = headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            let attribute = name
                .get(..3)
                .filter(|p| p.eq_ignore_ascii_case(wire::BINARY_HEADER_PREFIX))
                .map(|_| &name[3..]);
            let is_content_type = name.eq_ignore_ascii_case(CONTENT_TYPE);
            if attribute.is_none() && !is_content_type {
                continue;
            }
            let mut values = values.iter().map(HeaderValue::as_str);
            let Some(first) = values.next() else { continue };
            if values.any(|other| other != first) {
                return Err(format!(
                    "header `{name}` is given twice with different values"
                ));
            }
            if let Some(attribute) = attribute {
                ce_content_type |= name.eq_ignore_ascii_case(CE_CONTENT_TYPE);
                let value = decode(name, first)?;
                if refused.is_none()
                    && let Err(error) = builder.set_from_header(attribute, &value)
                {
                    refused = Some(error);
                }
            } else {
                content_type = Some(first);
            }
        }
    }
    let structured = content_type.is_some_and(|ct| {
        crate::codec::media_type(ct).eq_ignore_ascii_case(wire::STRUCTURED_CONTENT_TYPE)
    });
    if structured {
        return wire::from_structured(&payload).map_err(|e| e.to_string());
    }
    if let Some(error) = refused {
        return Err(error.to_string());
    }
    // The attribute's own header says it; `Content-Type` is only its fallback.
    if !ce_content_type && let Some(ct) = content_type.filter(|ct| !ct.is_empty()) {
        builder.set_content_type(ct);
    }
    let attributes = builder.build().map_err(|e| e.to_string())?;
    Ok(RawEvent::new(attributes, payload))
}

/// A header's value as text.
pub(crate) fn text<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(HeaderValue::as_str)
}

/// A copy of a delivered message's headers for the parking stream: without
/// `Nats-Msg-Id` (a second parking of the same event must not be dropped as
/// a duplicate), with the reason, the delivery count and the first subject.
pub(crate) fn parked_headers(
    original: Option<&HeaderMap>,
    subject: &str,
    deliveries: u32,
    reason: &str,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(original) = original {
        for (name, values) in original.iter() {
            let n: &str = name.as_ref();
            if n.eq_ignore_ascii_case(MSG_ID)
                || n.eq_ignore_ascii_case(REASON_HEADER)
                || n.eq_ignore_ascii_case(DELIVERIES_HEADER)
            {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    if text(Some(&headers), SUBJECT_HEADER).is_none() {
        headers.insert(SUBJECT_HEADER, HeaderValue::from_lossy(subject));
    }
    headers.insert(DELIVERIES_HEADER, HeaderValue::from(deliveries));
    headers.insert(REASON_HEADER, HeaderValue::from_lossy(reason));
    headers
}

/// The headers of a replayed dead letter: the parked copy's, without what parking added.
pub(crate) fn replayed_headers(parked: Option<&HeaderMap>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(parked) = parked {
        for (name, values) in parked.iter() {
            let n: &str = name.as_ref();
            if [REASON_HEADER, DELIVERIES_HEADER, SUBJECT_HEADER, MSG_ID]
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
            {
                continue;
            }
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    headers
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
    fn binary_mode_round_trips_with_ce_headers_content_type_and_msg_id() {
        let headers = headers(&event()).unwrap();
        assert_eq!(text(Some(&headers), "ce-id"), Some("e-1"));
        assert_eq!(text(Some(&headers), "ce-specversion"), Some("1.0"));
        assert_eq!(text(Some(&headers), "ce-correlationid"), Some("c-1"));
        assert_eq!(text(Some(&headers), CONTENT_TYPE), Some("application/json"));
        assert_eq!(
            text(Some(&headers), CE_CONTENT_TYPE),
            Some("application/json")
        );
        assert_eq!(text(Some(&headers), MSG_ID), Some("e-1"));
        assert_eq!(
            from_nats(Some(&headers), Bytes::from_static(b"{}")).unwrap(),
            event()
        );
    }

    #[test]
    fn structured_mode_is_read() {
        let body = wire::to_structured(&event()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, wire::STRUCTURED_CONTENT_TYPE);
        assert_eq!(
            from_nats(Some(&headers), Bytes::from(body)).unwrap(),
            event()
        );
    }

    #[test]
    fn garbage_and_missing_headers_give_a_reason() {
        let reason = from_nats(None, Bytes::from_static(b"\x00garbage")).unwrap_err();
        assert!(reason.contains("`specversion` is missing"), "{reason}");
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", "1.0");
        headers.insert("ce-id", "1");
        headers.insert("ce-type", "t");
        let reason = from_nats(Some(&headers), Bytes::new()).unwrap_err();
        assert!(reason.contains("`source` is missing"), "{reason}");
        headers.insert("ce-source", "/s");
        headers.append("ce-id", "2");
        let reason = from_nats(Some(&headers), Bytes::new()).unwrap_err();
        assert_eq!(
            reason,
            "header `ce-id` is given twice with different values"
        );
    }

    #[test]
    fn attribute_values_are_percent_encoded_as_the_binding_says() {
        let mut e = event();
        e.attributes.subject = Some("Euro \u{20ac} \u{1f600}".to_owned());
        e.attributes.set_correlation_id("100% \"sure\"\r\nnext");
        let headers = headers(&e).unwrap();
        // The binding's own example.
        assert_eq!(
            text(Some(&headers), "ce-subject"),
            Some("Euro%20%E2%82%AC%20%F0%9F%98%80")
        );
        assert_eq!(
            text(Some(&headers), "ce-correlationid"),
            Some("100%25%20%22sure%22%0D%0Anext")
        );
        assert_eq!(from_nats(Some(&headers), e.data.clone()).unwrap(), e);
    }

    #[test]
    fn foreign_encodings_are_decoded_and_bad_ones_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", "1.0");
        headers.insert("ce-id", "1");
        headers.insert("ce-source", "/s");
        headers.insert("ce-type", "t");
        // Lower-case hex, and the double-quoted form of older senders.
        headers.insert("ce-subject", "caf%c3%a9");
        headers.insert("ce-correlationid", "\"a b\\\"c%21\"");
        let event = from_nats(Some(&headers), Bytes::new()).unwrap();
        assert_eq!(event.subject(), Some("caf\u{e9}"));
        assert_eq!(event.attributes.correlation_id(), Some("a b\"c!"));
        // An overlong encoding of a space is not UTF-8.
        headers.insert("ce-subject", "%C0%A0");
        let reason = from_nats(Some(&headers), Bytes::new()).unwrap_err();
        assert_eq!(reason, "header `ce-subject` is not percent-encoded UTF-8");
    }

    #[test]
    fn header_names_are_case_insensitive_and_bad_attributes_matter_only_in_binary_mode() {
        let mut headers = HeaderMap::new();
        headers.insert("CE-SpecVersion", "1.0");
        headers.insert("Ce-Id", "1");
        headers.insert("ce-SOURCE", "/s");
        headers.insert("ce-type", "t");
        headers.insert("Ce-CorrelationId", "c-1");
        let read = from_nats(Some(&headers), Bytes::new()).unwrap();
        assert_eq!(read.id(), "1");
        assert_eq!(read.attributes.correlation_id(), Some("c-1"));
        // An extension name CloudEvents does not allow: refused in binary mode...
        headers.insert("ce-bad_name", "x");
        let reason = from_nats(Some(&headers), Bytes::new()).unwrap_err();
        assert!(reason.contains("bad_name"), "{reason}");
        // ...and irrelevant in structured mode, where the body holds the attributes.
        headers.insert(CONTENT_TYPE, wire::STRUCTURED_CONTENT_TYPE);
        let body = wire::to_structured(&event()).unwrap();
        assert_eq!(
            from_nats(Some(&headers), Bytes::from(body)).unwrap(),
            event()
        );
    }

    #[test]
    fn datacontenttype_comes_from_its_ce_header_else_from_content_type() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", "1.0");
        headers.insert("ce-id", "1");
        headers.insert("ce-source", "/s");
        headers.insert("ce-type", "t");
        headers.insert(CONTENT_TYPE, "text/plain");
        let event = from_nats(Some(&headers), Bytes::new()).unwrap();
        assert_eq!(
            event.attributes.datacontenttype.as_deref(),
            Some("text/plain")
        );
        headers.insert(CE_CONTENT_TYPE, "application/json");
        let event = from_nats(Some(&headers), Bytes::new()).unwrap();
        assert_eq!(
            event.attributes.datacontenttype.as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn line_breaks_in_the_content_type_are_refused_not_mangled() {
        let mut e = event();
        e.attributes.datacontenttype = Some("text/plain\r\nX-Injected: 1".to_owned());
        let err = headers(&e).unwrap_err();
        assert!(
            matches!(err, BusError::Unsupported(ref m) if m.contains("line break")),
            "{err}"
        );
    }

    #[test]
    fn event_types_that_are_not_subject_tokens_are_refused() {
        assert_eq!(
            event_subject("tessera.events", "com.example.a.v1").unwrap(),
            "tessera.events.com.example.a.v1"
        );
        for bad in ["", "a b", "a..b", ".a", "a.", "a.*", "a.>", "$replay.g"] {
            assert!(
                matches!(event_subject("p", bad), Err(BusError::Unsupported(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parked_copies_drop_the_msg_id_and_carry_reason_count_and_subject() {
        let original = headers(&event()).unwrap();
        let parked = parked_headers(Some(&original), "p.t", 3, "boom\nline");
        assert_eq!(text(Some(&parked), MSG_ID), None);
        assert_eq!(text(Some(&parked), REASON_HEADER), Some("boom line"));
        assert_eq!(text(Some(&parked), DELIVERIES_HEADER), Some("3"));
        assert_eq!(text(Some(&parked), SUBJECT_HEADER), Some("p.t"));
        // Parked twice (replayed, failed again): one reason, the newest.
        let twice = parked_headers(Some(&parked), "ignored", 1, "again");
        assert_eq!(text(Some(&twice), REASON_HEADER), Some("again"));
        assert_eq!(text(Some(&twice), SUBJECT_HEADER), Some("p.t"));
        let replayed = replayed_headers(Some(&twice));
        assert_eq!(text(Some(&replayed), REASON_HEADER), None);
        assert_eq!(
            from_nats(Some(&replayed), Bytes::from_static(b"{}")).unwrap(),
            event()
        );
    }
}
