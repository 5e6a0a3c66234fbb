//! [`Envelope<E>`]: a typed event with its CloudEvents attributes.
//!
//! [`Envelope::new`] fills in a fresh id (UUID v7), the type name, the
//! current time, the subject and the data schema from the [`Event`] impl.
//! [`Envelope::encode`] turns it into a [`RawEvent`] for a backend;
//! [`Envelope::decode`] is the way back and checks the type name, the
//! content type and the payload.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tessera_event_bus::{Envelope, JsonCodec};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct UserDeleted { user_id: String }
//! tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
//!
//! let env = Envelope::new("/user-service", UserDeleted { user_id: "u1".into() })
//!     .with_correlation_id("req-42");
//! let raw = env.encode(&JsonCodec).unwrap();
//! assert_eq!(raw.attributes.datacontenttype.as_deref(), Some("application/json"));
//! assert_eq!(raw.subject(), Some("u1"));
//!
//! let back = Envelope::<UserDeleted>::decode(&raw, &JsonCodec).unwrap();
//! assert_eq!(back.data(), &UserDeleted { user_id: "u1".into() });
//! assert_eq!(back.attributes().correlation_id(), Some("req-42"));
//! ```

use std::{fmt, sync::Arc};

use time::OffsetDateTime;

use crate::{
    Attributes, Codec, Event, RawEvent,
    error::{CodecError, DecodeError},
};

/// A typed event and its CloudEvents attributes.
#[derive(Clone)]
pub struct Envelope<E> {
    attributes: Attrs,
    data: E,
}

/// An envelope's attributes: its own, or those of the raw event it was
/// decoded from, shared until changed (a delivered event's attributes are
/// not copied for its handler).
#[derive(Clone)]
enum Attrs {
    Owned(Attributes),
    Shared(Arc<RawEvent>),
}

impl Attrs {
    fn get(&self) -> &Attributes {
        match self {
            Self::Owned(attributes) => attributes,
            Self::Shared(raw) => &raw.attributes,
        }
    }

    fn get_mut(&mut self) -> &mut Attributes {
        match self {
            Self::Owned(attributes) => attributes,
            // Copied on the first change while the raw event is shared.
            Self::Shared(raw) => &mut Arc::make_mut(raw).attributes,
        }
    }

    fn into_owned(self) -> Attributes {
        match self {
            Self::Owned(attributes) => attributes,
            Self::Shared(raw) => {
                Arc::try_unwrap(raw).map_or_else(|raw| raw.attributes.clone(), |raw| raw.attributes)
            }
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Envelope<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("attributes", self.attributes())
            .field("data", &self.data)
            .finish()
    }
}

impl<E: PartialEq> PartialEq for Envelope<E> {
    fn eq(&self, other: &Self) -> bool {
        self.attributes() == other.attributes() && self.data == other.data
    }
}

impl<E: Event> Envelope<E> {
    /// A new envelope: fresh id, `type` = `E::TYPE`, `time` = now, `subject`
    /// from [`Event::subject`], `dataschema` from `E::DATASCHEMA`.
    ///
    /// `source` names the producer (a URI-reference such as `/user-service`).
    pub fn new(source: impl Into<String>, data: E) -> Self {
        let mut attributes = Attributes::new(Attributes::new_id(), source, E::TYPE);
        attributes.time = Some(OffsetDateTime::now_utc());
        attributes.subject = data.subject();
        attributes.dataschema = E::DATASCHEMA.map(str::to_owned);
        Self::from_parts(attributes, data)
    }

    /// Encodes the data with `codec` into a raw event; `datacontenttype` is the codec's.
    ///
    /// The attributes are not validated here; publishers do that.
    pub fn encode<C: Codec + ?Sized>(&self, codec: &C) -> Result<RawEvent, CodecError> {
        let data = codec.encode(&self.data)?;
        let mut attributes = self.attributes().clone();
        attributes.datacontenttype = Some(codec.content_type().to_owned());
        Ok(RawEvent { attributes, data })
    }

    /// Like [`encode`](Self::encode), but takes the envelope: its attributes
    /// move into the raw event instead of being copied.
    pub fn into_raw<C: Codec + ?Sized>(self, codec: &C) -> Result<RawEvent, CodecError> {
        let data = codec.encode(&self.data)?;
        let mut attributes = self.attributes.into_owned();
        attributes.datacontenttype = Some(codec.content_type().to_owned());
        Ok(RawEvent { attributes, data })
    }

    /// Decodes a raw event: its `type` must be `E::TYPE`, its content type one
    /// the codec reads, and its data must decode into `E`.
    pub fn decode<C: Codec + ?Sized>(raw: &RawEvent, codec: &C) -> Result<Self, DecodeError> {
        let data = Self::decode_data(raw, codec)?;
        Ok(Self::from_parts(raw.attributes.clone(), data))
    }

    /// Like [`decode`](Self::decode), but the envelope shares the raw
    /// event's attributes instead of copying them (until they are changed
    /// through [`attributes_mut`](Self::attributes_mut)). The router decodes
    /// deliveries this way. The envelope keeps `raw` (its data bytes
    /// included) alive while it lives; [`into_parts`](Self::into_parts)
    /// lets go of it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use serde::{Deserialize, Serialize};
    /// # use tessera_event_bus::{Envelope, JsonCodec};
    /// # #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// # struct UserDeleted { user_id: String }
    /// # tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
    /// let raw = Arc::new(Envelope::new("/users", UserDeleted { user_id: "u1".into() })
    ///     .encode(&JsonCodec).unwrap());
    /// let mut env = Envelope::<UserDeleted>::decode_shared(&raw, &JsonCodec).unwrap();
    /// assert_eq!(env.id(), raw.id());
    /// env.attributes_mut().set_correlation_id("req-1");
    /// assert_eq!(raw.attributes.correlation_id(), None, "the raw event is not changed");
    /// ```
    pub fn decode_shared<C: Codec + ?Sized>(
        raw: &Arc<RawEvent>,
        codec: &C,
    ) -> Result<Self, DecodeError> {
        let data = Self::decode_data(raw, codec)?;
        Ok(Self {
            attributes: Attrs::Shared(Arc::clone(raw)),
            data,
        })
    }

    fn decode_data<C: Codec + ?Sized>(raw: &RawEvent, codec: &C) -> Result<E, DecodeError> {
        if raw.attributes.ty != E::TYPE {
            return Err(DecodeError::TypeMismatch {
                expected: E::TYPE,
                found: raw.attributes.ty.clone(),
            });
        }
        let content_type = raw.attributes.datacontenttype.as_deref();
        if !codec.reads(content_type) {
            return Err(DecodeError::UnsupportedContentType {
                expected: codec.content_type().to_owned(),
                found: content_type.unwrap_or_default().to_owned(),
            });
        }
        Ok(codec.decode(&raw.data)?)
    }
}

impl<E> Envelope<E> {
    /// An envelope from attributes and data, taken as they are.
    pub fn from_parts(attributes: Attributes, data: E) -> Self {
        Self {
            attributes: Attrs::Owned(attributes),
            data,
        }
    }

    /// The attributes.
    pub fn attributes(&self) -> &Attributes {
        self.attributes.get()
    }

    /// The attributes, to change them before publishing.
    pub fn attributes_mut(&mut self) -> &mut Attributes {
        self.attributes.get_mut()
    }

    /// The event id.
    pub fn id(&self) -> &str {
        &self.attributes().id
    }

    /// The data.
    pub fn data(&self) -> &E {
        &self.data
    }

    /// The data, consuming the envelope.
    pub fn into_data(self) -> E {
        self.data
    }

    /// Attributes and data, consuming the envelope.
    pub fn into_parts(self) -> (Attributes, E) {
        (self.attributes.into_owned(), self.data)
    }

    /// Sets the `subject` (the ordering key).
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.attributes_mut().subject = Some(subject.into());
        self
    }

    /// Sets the `correlationid` extension.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.attributes_mut().set_correlation_id(id);
        self
    }

    /// Sets the `causationid` extension.
    #[must_use]
    pub fn with_causation_id(mut self, id: impl Into<String>) -> Self {
        self.attributes_mut().set_causation_id(id);
        self
    }

    /// Sets an extension attribute.
    #[must_use]
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes_mut().set_extension(name, value);
        self
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::JsonCodec;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Registered {
        user_id: u32,
    }
    crate::event!(Registered => "com.example.user.registered.v1", subject = user_id);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Schemaed;
    impl Event for Schemaed {
        const TYPE: &'static str = "com.example.schemaed.v1";
        const DATASCHEMA: Option<&'static str> = Some("https://example.com/schema.json");
    }

    #[test]
    fn new_envelope_fills_cloudevents_attributes_from_the_event() {
        let env = Envelope::new("/users", Registered { user_id: 3 });
        let a = env.attributes();
        assert_eq!(a.ty, "com.example.user.registered.v1");
        assert_eq!(a.source, "/users");
        assert_eq!(a.subject.as_deref(), Some("3"));
        assert!(a.time.is_some());
        assert_eq!(a.validate(), Ok(()));
        let schemaed = Envelope::new("/s", Schemaed);
        assert_eq!(
            schemaed.attributes().dataschema.as_deref(),
            Some("https://example.com/schema.json")
        );
    }

    #[test]
    fn decode_rejects_another_event_type() {
        let raw = Envelope::new("/s", Schemaed).encode(&JsonCodec).unwrap();
        let err = Envelope::<Registered>::decode(&raw, &JsonCodec).unwrap_err();
        assert!(matches!(err, DecodeError::TypeMismatch { .. }), "{err}");
    }

    #[test]
    fn decode_rejects_a_content_type_the_codec_cannot_read() {
        let mut raw = Envelope::new("/s", Registered { user_id: 1 })
            .encode(&JsonCodec)
            .unwrap();
        raw.attributes.datacontenttype = Some("application/xml".to_owned());
        let err = Envelope::<Registered>::decode(&raw, &JsonCodec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported data content type `application/xml` (codec reads `application/json`)"
        );
    }

    #[test]
    fn undecodable_payload_gives_a_payload_error_not_a_panic() {
        let mut raw = Envelope::new("/s", Registered { user_id: 1 })
            .encode(&JsonCodec)
            .unwrap();
        for garbage in [
            &b""[..],
            b"{",
            b"\x00\x01",
            br#"{"user_id":"not a number"}"#,
        ] {
            raw.data = Bytes::copy_from_slice(garbage);
            let err = Envelope::<Registered>::decode(&raw, &JsonCodec).unwrap_err();
            assert!(matches!(err, DecodeError::Payload(_)), "{err}");
        }
    }

    #[test]
    fn builder_methods_set_extensions() {
        let env = Envelope::new("/s", Registered { user_id: 1 })
            .with_subject("other")
            .with_causation_id("cause")
            .with_extension("tenant", "acme");
        assert_eq!(env.attributes().subject.as_deref(), Some("other"));
        assert_eq!(env.attributes().causation_id(), Some("cause"));
        assert_eq!(env.attributes().extension("tenant"), Some("acme"));
    }
}
