//! The untyped event that backends carry: attributes plus data bytes.
//!
//! Backends never see Rust event types. A typed [`Envelope`](crate::Envelope)
//! is encoded into a [`RawEvent`] before publishing and decoded from one after
//! delivery, so a backend needs only the attributes (headers on the wire) and
//! an opaque body.
//!
//! ```
//! use bytes::Bytes;
//! use tessera_event_bus::{Attributes, RawEvent};
//!
//! let mut attrs = Attributes::new("1", "/svc", "com.example.thing.v1");
//! attrs.datacontenttype = Some("application/json".to_owned());
//! let raw = RawEvent::new(attrs, Bytes::from_static(br#"{"n":1}"#));
//! assert_eq!(raw.event_type(), "com.example.thing.v1");
//! assert_eq!(&raw.data[..], br#"{"n":1}"#);
//! ```

use bytes::Bytes;

use crate::Attributes;

/// An event as it travels: CloudEvents attributes and the encoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The CloudEvents context attributes.
    pub attributes: Attributes,
    /// The encoded data, in the media type given by `attributes.datacontenttype`.
    pub data: Bytes,
}

impl RawEvent {
    /// A raw event from its parts.
    pub fn new(attributes: Attributes, data: impl Into<Bytes>) -> Self {
        Self {
            attributes,
            data: data.into(),
        }
    }

    /// The event's `id`.
    pub fn id(&self) -> &str {
        &self.attributes.id
    }

    /// The event's `type`, which is also its routing key.
    pub fn event_type(&self) -> &str {
        &self.attributes.ty
    }

    /// The event's `subject` (its ordering key), if any.
    pub fn subject(&self) -> Option<&str> {
        self.attributes.subject.as_deref()
    }
}
