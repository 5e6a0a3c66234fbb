//! CloudEvents 1.0 context attributes, shared by typed envelopes and raw messages.
//!
//! [`Attributes`] holds the required attributes (`id`, `source`, `type`,
//! `specversion`), the optional ones (`time`, `subject`, `datacontenttype`,
//! `dataschema`) and string-valued extensions. The extensions Tessera itself
//! uses have named accessors: `correlationid`, `causationid`, `traceparent`
//! and `tracestate`.
//!
//! ```
//! use tessera_event_bus::Attributes;
//!
//! let mut attrs = Attributes::new("0192", "/user-service", "com.example.user.registered.v1");
//! attrs.set_correlation_id("req-7");
//! assert_eq!(attrs.correlation_id(), Some("req-7"));
//! assert!(attrs.validate().is_ok());
//! ```

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::error::AttributeError;

/// The only CloudEvents specification version this crate reads and writes.
pub const SPEC_VERSION: &str = "1.0";

/// Extension attribute name for the correlation id (the id of the first event
/// or request of a conversation).
pub const CORRELATION_ID: &str = "correlationid";
/// Extension attribute name for the causation id (the id of the event that
/// directly caused this one).
pub const CAUSATION_ID: &str = "causationid";
/// Extension attribute name for the W3C `traceparent` (distributed tracing extension).
pub const TRACEPARENT: &str = "traceparent";
/// Extension attribute name for the W3C `tracestate` (distributed tracing extension).
pub const TRACESTATE: &str = "tracestate";

/// Names of the CloudEvents 1.0 core attributes; they can never be extensions.
pub(crate) const CORE_ATTRIBUTES: [&str; 8] = [
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
];

/// The CloudEvents 1.0 context attributes of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `id`: unique per `source`; consumers deduplicate on (`source`, `id`).
    pub id: String,
    /// `source`: a URI-reference naming the producer, such as `/user-service`.
    pub source: String,
    /// `type`: the stable event type name, such as `com.example.user.registered.v1`.
    pub ty: String,
    /// `specversion`: always [`SPEC_VERSION`] for events this crate accepts.
    pub specversion: String,
    /// `time`: when the occurrence happened.
    pub time: Option<OffsetDateTime>,
    /// `subject`: what the event is about (for example a user id); the ordering key.
    pub subject: Option<String>,
    /// `datacontenttype`: the media type of the data, such as `application/json`.
    pub datacontenttype: Option<String>,
    /// `dataschema`: a URI identifying the schema the data adheres to.
    pub dataschema: Option<String>,
    /// Extension attributes by name (lowercase ASCII letters and digits), string valued.
    pub extensions: BTreeMap<String, String>,
}

impl Attributes {
    /// Attributes with the required fields set, `specversion` 1.0 and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            specversion: SPEC_VERSION.to_owned(),
            time: None,
            subject: None,
            datacontenttype: None,
            dataschema: None,
            extensions: BTreeMap::new(),
        }
    }

    /// A fresh, time-ordered event id (UUID v7).
    pub fn new_id() -> String {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        // Written straight into a buffer of the right size: no formatter.
        uuid::Uuid::now_v7()
            .hyphenated()
            .encode_lower(&mut buf)
            .to_owned()
    }

    /// The value of an extension attribute.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions.get(name).map(String::as_str)
    }

    /// Sets an extension attribute, replacing any previous value.
    ///
    /// The name is not checked here; [`Attributes::validate`] rejects invalid names.
    pub fn set_extension(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.extensions.insert(name.into(), value.into());
    }

    /// The `correlationid` extension.
    pub fn correlation_id(&self) -> Option<&str> {
        self.extension(CORRELATION_ID)
    }

    /// Sets the `correlationid` extension.
    pub fn set_correlation_id(&mut self, value: impl Into<String>) {
        self.set_extension(CORRELATION_ID, value);
    }

    /// The `causationid` extension.
    pub fn causation_id(&self) -> Option<&str> {
        self.extension(CAUSATION_ID)
    }

    /// Sets the `causationid` extension.
    pub fn set_causation_id(&mut self, value: impl Into<String>) {
        self.set_extension(CAUSATION_ID, value);
    }

    /// The `traceparent` extension (W3C Trace Context).
    pub fn traceparent(&self) -> Option<&str> {
        self.extension(TRACEPARENT)
    }

    /// Sets the `traceparent` extension.
    pub fn set_traceparent(&mut self, value: impl Into<String>) {
        self.set_extension(TRACEPARENT, value);
    }

    /// The `tracestate` extension (W3C Trace Context).
    pub fn tracestate(&self) -> Option<&str> {
        self.extension(TRACESTATE)
    }

    /// Sets the `tracestate` extension.
    pub fn set_tracestate(&mut self, value: impl Into<String>) {
        self.set_extension(TRACESTATE, value);
    }

    /// Checks the attributes against CloudEvents 1.0: required attributes
    /// non-empty, `specversion` 1.0, extension names valid and not shadowing a
    /// core attribute.
    pub fn validate(&self) -> Result<(), AttributeError> {
        self.check(true)
    }

    /// [`validate`](Self::validate) without `datacontenttype`, for a writer
    /// that puts its own content type in its place.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn validate_without_content_type(&self) -> Result<(), AttributeError> {
        self.check(false)
    }

    fn check(&self, content_type: bool) -> Result<(), AttributeError> {
        for (name, value) in [
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.ty),
        ] {
            if value.is_empty() {
                return Err(AttributeError::Missing(name));
            }
        }
        if self.specversion != SPEC_VERSION {
            return Err(AttributeError::UnsupportedSpecVersion(
                self.specversion.clone(),
            ));
        }
        for (name, value) in [
            ("subject", &self.subject),
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
        ] {
            if value.as_deref() == Some("") && (content_type || name != "datacontenttype") {
                return Err(AttributeError::Empty(name));
            }
        }
        for name in self.extensions.keys() {
            validate_extension_name(name)?;
        }
        Ok(())
    }
}

/// Extension names: lowercase ASCII letters and digits, 1 to 20 characters
/// (the CloudEvents 1.0 naming rule), and never a core attribute name.
pub(crate) fn validate_extension_name(name: &str) -> Result<(), AttributeError> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if name.is_empty() || name.len() > 20 || !valid_chars {
        return Err(AttributeError::InvalidName(name.to_owned()));
    }
    if CORE_ATTRIBUTES.contains(&name) || name == "data" || name == "data_base64" {
        return Err(AttributeError::ReservedName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        Attributes::new("1", "/svc", "com.example.thing.v1")
    }

    #[test]
    fn new_attributes_are_valid_and_speak_cloudevents_1_0() {
        let a = attrs();
        assert_eq!(a.specversion, "1.0");
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn empty_required_attribute_is_reported_by_name() {
        let mut a = attrs();
        a.source.clear();
        assert_eq!(a.validate(), Err(AttributeError::Missing("source")));
        let mut a = attrs();
        a.ty.clear();
        assert_eq!(a.validate(), Err(AttributeError::Missing("type")));
    }

    #[test]
    fn other_spec_versions_are_rejected() {
        let mut a = attrs();
        a.specversion = "0.3".to_owned();
        assert_eq!(
            a.validate(),
            Err(AttributeError::UnsupportedSpecVersion("0.3".to_owned()))
        );
    }

    #[test]
    fn empty_optional_attribute_is_rejected() {
        let mut a = attrs();
        a.subject = Some(String::new());
        assert_eq!(a.validate(), Err(AttributeError::Empty("subject")));
    }

    #[test]
    fn extension_names_follow_the_cloudevents_naming_rule() {
        for bad in ["Upper", "with-dash", "", "waytoolongextensionname"] {
            let mut a = attrs();
            a.set_extension(bad, "x");
            assert_eq!(
                a.validate(),
                Err(AttributeError::InvalidName(bad.to_owned())),
                "{bad}"
            );
        }
        let mut a = attrs();
        a.set_extension("subject", "x");
        assert_eq!(
            a.validate(),
            Err(AttributeError::ReservedName("subject".to_owned()))
        );
    }

    #[test]
    fn named_extension_accessors_read_what_setters_wrote() {
        let mut a = attrs();
        a.set_correlation_id("c");
        a.set_causation_id("k");
        a.set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        a.set_tracestate("congo=t61rcWkgMzE");
        assert_eq!(a.correlation_id(), Some("c"));
        assert_eq!(a.causation_id(), Some("k"));
        assert_eq!(a.extension("correlationid"), Some("c"));
        assert!(a.traceparent().is_some_and(|t| t.starts_with("00-")));
        assert_eq!(a.tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn new_ids_are_unique() {
        assert_ne!(Attributes::new_id(), Attributes::new_id());
    }
}
