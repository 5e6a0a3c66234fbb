//! The wire mapping between [`RawEvent`]s and broker messages, independent of any broker client.
//!
//! **Binary content mode** (what Tessera writes): the data is the message
//! body, `datacontenttype` is the message's content type property, and every
//! other attribute is a string header prefixed `ce-` (`ce-specversion`,
//! `ce-id`, `ce-source`, `ce-type`, `ce-time` in RFC 3339, `ce-subject`,
//! `ce-dataschema`, extensions such as `ce-correlationid`). This is the
//! CloudEvents RabbitMQ protocol binding.
//!
//! Readers also accept the AMQP binding's `cloudEvents_` and `cloudEvents:`
//! header prefixes, and **structured content mode**: a message whose content
//! type is `application/cloudevents+json` carries the whole event as a JSON
//! object (`data` or `data_base64` inside).
//!
//! Untrusted messages give a [`WireError`], never a panic.
//!
//! ```
//! use bytes::Bytes;
//! use tessera_event_bus::{Attributes, RawEvent, wire};
//!
//! let mut attrs = Attributes::new("1", "/users", "com.example.user.deleted.v1");
//! attrs.datacontenttype = Some("application/json".to_owned());
//! attrs.set_correlation_id("req-9");
//! let raw = RawEvent::new(attrs, Bytes::from_static(b"{}"));
//!
//! let msg = wire::to_binary(&raw);
//! assert_eq!(msg.content_type.as_deref(), Some("application/json"));
//! assert!(msg.headers.contains(&("ce-id".to_owned(), "1".to_owned())));
//! assert!(msg.headers.contains(&("ce-correlationid".to_owned(), "req-9".to_owned())));
//!
//! let headers = msg.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
//! let back = wire::from_message(msg.content_type.as_deref(), headers, msg.body.clone()).unwrap();
//! assert_eq!(back, raw);
//! ```

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    Attributes, RawEvent,
    codec::{is_json_media_type, media_type},
    error::{AttributeError, WireError},
};

mod attributes_builder;
pub(crate) use attributes_builder::AttributesBuilder;

/// The header prefix of the CloudEvents RabbitMQ (and Kafka, HTTP) binary mode; Tessera writes it.
pub const BINARY_HEADER_PREFIX: &str = "ce-";

/// Header prefixes of the CloudEvents AMQP binding; read, never written.
pub const AMQP_HEADER_PREFIXES: [&str; 2] = ["cloudEvents_", "cloudEvents:"];

/// The content type of structured content mode in JSON.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// A message in binary content mode, ready to be mapped onto a broker's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMessage {
    /// The content type property (`datacontenttype`).
    pub content_type: Option<String>,
    /// String headers, each named with the `ce-` prefix.
    pub headers: Vec<(String, String)>,
    /// The body (the event data).
    pub body: Bytes,
}

/// Formats a `time` attribute in RFC 3339.
pub fn format_time(time: OffsetDateTime) -> String {
    // Formatting an OffsetDateTime as RFC 3339 fails only for years outside 0..=9999.
    time.format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

/// Parses a `time` attribute in RFC 3339.
pub fn parse_time(value: &str) -> Result<OffsetDateTime, AttributeError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| AttributeError::InvalidTime(value.to_owned()))
}

/// Writes an event in binary content mode with `ce-` headers.
pub fn to_binary(event: &RawEvent) -> BinaryMessage {
    let a = &event.attributes;
    let mut headers = Vec::with_capacity(6 + a.extensions.len());
    let mut push = |name: &str, value: &str| {
        headers.push((format!("{BINARY_HEADER_PREFIX}{name}"), value.to_owned()));
    };
    push("specversion", &a.specversion);
    push("id", &a.id);
    push("source", &a.source);
    push("type", &a.ty);
    if let Some(time) = a.time {
        push("time", &format_time(time));
    }
    if let Some(subject) = &a.subject {
        push("subject", subject);
    }
    if let Some(schema) = &a.dataschema {
        push("dataschema", schema);
    }
    for (name, value) in &a.extensions {
        push(name, value);
    }
    BinaryMessage {
        content_type: a.datacontenttype.clone(),
        headers,
        body: event.data.clone(),
    }
}

/// Reads a broker message in either content mode.
///
/// A content type of `application/cloudevents+json` means structured mode;
/// anything else is binary mode, where attributes come from headers prefixed
/// `ce-`, `cloudEvents_` or `cloudEvents:` (other headers are ignored) and
/// `datacontenttype` from the content type.
pub fn from_message<'a>(
    content_type: Option<&str>,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Bytes,
) -> Result<RawEvent, WireError> {
    if content_type.is_some_and(|ct| media_type(ct).eq_ignore_ascii_case(STRUCTURED_CONTENT_TYPE)) {
        return from_structured(&body);
    }
    from_binary(content_type, headers, body)
}

/// Reads a binary-mode message.
pub fn from_binary<'a>(
    content_type: Option<&str>,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Bytes,
) -> Result<RawEvent, WireError> {
    let mut builder = AttributesBuilder::default();
    for (name, value) in headers {
        if let Some(attr) = strip_prefix(name) {
            builder.set_from_header(attr, value)?;
        }
    }
    if let Some(ct) = content_type.filter(|ct| !ct.is_empty()) {
        builder.set_content_type(ct);
    }
    Ok(RawEvent::new(builder.build()?, body))
}

fn strip_prefix(header: &str) -> Option<&str> {
    std::iter::once(BINARY_HEADER_PREFIX)
        .chain(AMQP_HEADER_PREFIXES)
        .find_map(|prefix| {
            let head = header.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix)
                .then(|| &header[prefix.len()..])
        })
}

/// A structured-mode JSON object, serialised from borrowed attributes: the
/// attributes, then the data member if there is one.
struct StructuredObject<'a> {
    attributes: &'a Attributes,
    /// Written as `datacontenttype` instead of the attributes' own, if set.
    content_type: Option<&'a str>,
    /// `("data", json)` or `("data_base64", text)`.
    data: Option<(&'static str, Value)>,
}

impl serde::Serialize for StructuredObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let a = self.attributes;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", &a.specversion)?;
        map.serialize_entry("id", &a.id)?;
        map.serialize_entry("source", &a.source)?;
        map.serialize_entry("type", &a.ty)?;
        if let Some(time) = a.time {
            map.serialize_entry("time", &format_time(time))?;
        }
        let content_type = self.content_type.or(a.datacontenttype.as_deref());
        for (name, value) in [
            ("subject", a.subject.as_deref()),
            ("datacontenttype", content_type),
            ("dataschema", a.dataschema.as_deref()),
        ] {
            if let Some(v) = value {
                map.serialize_entry(name, v)?;
            }
        }
        for (name, value) in &a.extensions {
            map.serialize_entry(name, value)?;
        }
        if let Some((name, value)) = &self.data {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The attributes alone as a structured-mode JSON object (no `data`): what
/// [`to_structured`] writes for an event without data (the outbox stores
/// one per row).
///
/// `content_type`, if set, is written as `datacontenttype` in place of the
/// attributes' own (the codec's, for an envelope encoded on the way in).
#[cfg(feature = "postgres")]
pub(crate) fn attributes_to_json(
    attributes: &Attributes,
    content_type: Option<&str>,
) -> Result<String, WireError> {
    serde_json::to_string(&StructuredObject {
        attributes,
        content_type,
        data: None,
    })
    .map_err(|e| WireError::NotJsonObject(e.to_string()))
}

/// Writes an event in structured content mode (`application/cloudevents+json`).
///
/// JSON data (or data without a content type) is embedded as `data`; other
/// data goes into `data_base64`.
pub fn to_structured(event: &RawEvent) -> Result<Vec<u8>, WireError> {
    let attributes = &event.attributes;
    let data = (!event.data.is_empty()).then(|| {
        let json_data = attributes
            .datacontenttype
            .as_deref()
            .is_none_or(is_json_media_type);
        match json_data
            .then(|| serde_json::from_slice::<Value>(&event.data).ok())
            .flatten()
        {
            Some(value) => ("data", value),
            None => (
                "data_base64",
                base64::engine::general_purpose::STANDARD
                    .encode(&event.data)
                    .into(),
            ),
        }
    });
    serde_json::to_vec(&StructuredObject {
        attributes,
        content_type: None,
        data,
    })
    .map_err(|e| WireError::NotJsonObject(e.to_string()))
}

/// Reads a structured-mode JSON event.
pub fn from_structured(body: &[u8]) -> Result<RawEvent, WireError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WireError::NotJsonObject(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(WireError::NotJsonObject(
            "the top level is not an object".to_owned(),
        ));
    };
    let mut builder = AttributesBuilder::default();
    let mut data = None;
    let mut data_base64 = None;
    for (name, value) in obj {
        match name.as_str() {
            "data" => data = Some(value),
            "data_base64" => data_base64 = Some(value),
            _ => {
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s,
                    // Extensions may be integers or booleans; core attributes must be strings.
                    Value::Number(n) if !is_core(&name) => n.to_string(),
                    Value::Bool(b) if !is_core(&name) => b.to_string(),
                    _ => return Err(WireError::UnsupportedValue(name)),
                };
                if name == "datacontenttype" {
                    builder.set_content_type(&text);
                } else {
                    builder.set(&name, &text)?;
                }
            }
        }
    }
    let attributes = builder.build()?;
    let bytes = match (data, data_base64) {
        (Some(d), Some(b)) if !d.is_null() && !b.is_null() => {
            return Err(WireError::DataAndDataBase64);
        }
        (_, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Bytes::from)
            .map_err(|_| WireError::InvalidBase64)?,
        (_, Some(v)) if !v.is_null() => {
            return Err(WireError::UnsupportedValue("data_base64".into()));
        }
        (Some(Value::Null) | None, _) => Bytes::new(),
        (Some(d), _) => {
            let ct = attributes.datacontenttype.as_deref();
            if ct.is_none_or(is_json_media_type) {
                Bytes::from(
                    serde_json::to_vec(&d).map_err(|e| WireError::NotJsonObject(e.to_string()))?,
                )
            } else if let Value::String(s) = d {
                Bytes::from(s)
            } else {
                return Err(WireError::DataNotEmbeddable(
                    ct.unwrap_or_default().to_owned(),
                ));
            }
        }
    };
    Ok(RawEvent::new(attributes, bytes))
}

fn is_core(name: &str) -> bool {
    crate::attributes::CORE_ATTRIBUTES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "postgres")]
    fn attributes_alone_are_the_structured_form_of_an_event_without_data() {
        let full = sample();
        let header = RawEvent::new(full.attributes.clone(), Bytes::new());
        let expected: Value = serde_json::from_slice(&to_structured(&header).unwrap()).unwrap();
        let written = attributes_to_json(&full.attributes, None).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), expected);
        let read = from_structured(written.as_bytes()).unwrap();
        assert_eq!(read.attributes, full.attributes);
        assert!(read.data.is_empty());
        // A content type given beside the attributes replaces theirs.
        let written = attributes_to_json(&full.attributes, Some("text/plain")).unwrap();
        let read = from_structured(written.as_bytes()).unwrap();
        assert_eq!(
            read.attributes.datacontenttype.as_deref(),
            Some("text/plain")
        );
        assert_eq!(read.attributes.id, full.attributes.id);
    }

    fn sample() -> RawEvent {
        let mut a = Attributes::new("e-1", "/users", "com.example.user.registered.v1");
        a.time = Some(parse_time("2025-01-02T03:04:05.123Z").unwrap());
        a.subject = Some("u-1".to_owned());
        a.datacontenttype = Some("application/json".to_owned());
        a.dataschema = Some("https://example.com/s.json".to_owned());
        a.set_correlation_id("corr");
        a.set_causation_id("cause");
        a.set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        a.set_tracestate("vendor=x");
        RawEvent::new(a, Bytes::from_static(br#"{"user_id":"u-1"}"#))
    }

    fn read(
        ct: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<RawEvent, WireError> {
        from_message(ct, headers.iter().copied(), Bytes::copy_from_slice(body))
    }

    #[test]
    fn binary_mode_writes_ce_headers_and_content_type() {
        let msg = to_binary(&sample());
        let get = |n: &str| {
            msg.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(msg.content_type.as_deref(), Some("application/json"));
        assert_eq!(get("ce-specversion"), Some("1.0"));
        assert_eq!(get("ce-id"), Some("e-1"));
        assert_eq!(get("ce-source"), Some("/users"));
        assert_eq!(get("ce-type"), Some("com.example.user.registered.v1"));
        assert_eq!(get("ce-time"), Some("2025-01-02T03:04:05.123Z"));
        assert_eq!(get("ce-subject"), Some("u-1"));
        assert_eq!(get("ce-dataschema"), Some("https://example.com/s.json"));
        assert_eq!(get("ce-correlationid"), Some("corr"));
        assert_eq!(get("ce-causationid"), Some("cause"));
        assert!(get("ce-traceparent").is_some());
        assert_eq!(get("ce-tracestate"), Some("vendor=x"));
        assert_eq!(
            get("ce-datacontenttype"),
            None,
            "content type is a property, not a header"
        );
        assert_eq!(&msg.body[..], br#"{"user_id":"u-1"}"#);
    }

    #[test]
    fn binary_mode_round_trips() {
        let raw = sample();
        let msg = to_binary(&raw);
        let headers = msg.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        assert_eq!(
            from_message(msg.content_type.as_deref(), headers, msg.body.clone()).unwrap(),
            raw
        );
    }

    #[test]
    fn amqp_binding_prefixes_are_read() {
        for prefix in ["cloudEvents_", "cloudEvents:"] {
            let h = |n: &str| format!("{prefix}{n}");
            let names = [
                h("specversion"),
                h("id"),
                h("source"),
                h("type"),
                h("tenant"),
            ];
            let headers = [
                (names[0].as_str(), "1.0"),
                (names[1].as_str(), "x"),
                (names[2].as_str(), "/py"),
                (names[3].as_str(), "com.example.t.v1"),
                (names[4].as_str(), "acme"),
                ("x-unrelated", "ignored"),
            ];
            let raw = read(Some("text/plain"), &headers, b"hi").unwrap();
            assert_eq!(raw.attributes.id, "x");
            assert_eq!(raw.attributes.source, "/py");
            assert_eq!(raw.attributes.extension("tenant"), Some("acme"));
            assert_eq!(
                raw.attributes.datacontenttype.as_deref(),
                Some("text/plain")
            );
            assert_eq!(
                raw.attributes.extensions.len(),
                1,
                "unprefixed headers are not attributes"
            );
        }
    }

    #[test]
    fn missing_required_headers_are_reported_by_name() {
        let full = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ];
        for (skip, expected) in [(0, "specversion"), (1, "id"), (2, "source"), (3, "type")] {
            let headers: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, h)| *h)
                .collect();
            let err = read(None, &headers, b"").unwrap_err();
            assert!(
                matches!(err, WireError::Attribute(AttributeError::Missing(n)) if n == expected),
                "{err}"
            );
        }
    }

    #[test]
    fn garbage_headers_give_clear_errors() {
        let base = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut h = base.to_vec();
            h.push(extra);
            h
        };
        let err = read(None, &with(("ce-time", "yesterday")), b"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid cloudevent: attribute `time` is not an rfc 3339 timestamp: `yesterday`"
        );
        let err = read(None, &with(("ce-bad_name!", "x")), b"").unwrap_err();
        assert!(
            matches!(err, WireError::Attribute(AttributeError::InvalidName(_))),
            "{err}"
        );
        let err = read(None, &with(("cloudEvents:id", "2")), b"").unwrap_err();
        assert!(
            matches!(err, WireError::DuplicateAttribute(ref n) if n == "id"),
            "{err}"
        );
        let mut v03 = base.to_vec();
        v03[0].1 = "0.3";
        let err = read(None, &v03, b"").unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Attribute(AttributeError::UnsupportedSpecVersion(_))
            ),
            "{err}"
        );
        assert!(read(None, &[], b"\xff\xfe garbage").is_err());
    }

    #[test]
    fn structured_mode_round_trips_json_data() {
        let raw = sample();
        let body = to_structured(&raw).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["data"]["user_id"], "u-1",
            "json data is embedded, not base64"
        );
        assert_eq!(value["correlationid"], "corr");
        let back = read(
            Some("application/cloudevents+json; charset=utf-8"),
            &[],
            &body,
        )
        .unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn structured_mode_round_trips_binary_data_as_base64() {
        let mut raw = sample();
        raw.attributes.datacontenttype = Some("application/octet-stream".to_owned());
        raw.data = Bytes::from_static(b"\x00\x01\xff");
        let body = to_structured(&raw).unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["data_base64"], "AAH/");
        assert_eq!(from_structured(&body).unwrap(), raw);
    }

    #[test]
    fn structured_mode_reads_what_other_sdks_write() {
        let body = br#"{"specversion":"1.0","id":"9","source":"/go","type":"t.v1",
            "datacontenttype":"text/plain","data":"hello","priority":3,"urgent":true,"x":null}"#;
        let raw = from_structured(body).unwrap();
        assert_eq!(&raw.data[..], b"hello");
        assert_eq!(raw.attributes.extension("priority"), Some("3"));
        assert_eq!(raw.attributes.extension("urgent"), Some("true"));
        assert_eq!(raw.attributes.extension("x"), None);
        let no_data =
            from_structured(br#"{"specversion":"1.0","id":"9","source":"/go","type":"t"}"#)
                .unwrap();
        assert!(no_data.data.is_empty());
    }

    #[test]
    fn garbage_structured_bodies_give_clear_errors() {
        let cases: [(&[u8], &str); 7] = [
            (b"not json", "structured cloudevent is not a json object"),
            (b"[1,2]", "structured cloudevent is not a json object"),
            (br#"{"specversion":"1.0","id":1,"source":"/s","type":"t"}"#, "attribute `id` has an unsupported json type"),
            (br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{}}"#, "attribute `ext` has an unsupported json type"),
            (br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#, "both `data` and `data_base64`"),
            (br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"!!"}"#, "not valid base64"),
            (br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":{"a":1}}"#, "cannot be embedded"),
        ];
        for (body, expected) in cases {
            let err = from_structured(body).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
        let err = from_structured(br#"{"id":"1","source":"/s","type":"t"}"#).unwrap_err();
        assert!(matches!(
            err,
            WireError::Attribute(AttributeError::Missing("specversion"))
        ));
    }

    #[test]
    fn header_prefixes_are_matched_without_panicking_on_short_or_multibyte_names() {
        assert_eq!(strip_prefix("ce-id"), Some("id"));
        assert_eq!(strip_prefix("CE-id"), Some("id"));
        assert_eq!(strip_prefix("ce"), None);
        assert_eq!(strip_prefix("çé-id"), None);
        assert_eq!(strip_prefix("cloudEvents:type"), Some("type"));
        assert_eq!(strip_prefix("content-type"), None);
    }
}
