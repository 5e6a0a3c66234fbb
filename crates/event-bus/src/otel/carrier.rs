//! [`AttributesInjector`] / [`AttributesExtractor`]: event extensions as an
//! OpenTelemetry text map carrier.

use opentelemetry::propagation::{Extractor, Injector};

use crate::{Attributes, attributes::validate_extension_name};

/// Writes a propagator's fields into an event's extensions.
///
/// Field names are lowercased; a field that cannot be a CloudEvents
/// extension name (lowercase letters and digits, at most 20) is left out
/// with a debug log, so a propagator can never make an event invalid. An
/// empty value removes the extension.
#[derive(Debug)]
pub struct AttributesInjector<'a>(pub &'a mut Attributes);

impl Injector for AttributesInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = key.to_ascii_lowercase();
        if validate_extension_name(&name).is_err() {
            tracing::debug!(
                field = key,
                "propagator field is not a valid CloudEvents extension name; not sent"
            );
            return;
        }
        if value.is_empty() {
            self.0.extensions.remove(&name);
        } else {
            self.0.extensions.insert(name, value);
        }
    }
}

/// Reads a propagator's fields from an event's extensions (names lowercased).
#[derive(Debug)]
pub struct AttributesExtractor<'a>(pub &'a Attributes);

impl Extractor for AttributesExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.extension(key) {
            Some(value) => Some(value),
            None => self.0.extension(&key.to_ascii_lowercase()),
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.extensions.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_extension_names_and_empty_values_are_not_written() {
        let mut attrs = Attributes::new("1", "/s", "t");
        attrs.set_tracestate("stale=1");
        let mut injector = AttributesInjector(&mut attrs);
        injector.set("X-B3-TraceId", "abc".into());
        injector.set("Traceparent", "00-x".into());
        injector.set("tracestate", String::new());
        injector.set("id", "shadowed".into());
        assert_eq!(attrs.extension("x-b3-traceid"), None);
        assert_eq!(attrs.traceparent(), Some("00-x"));
        assert_eq!(
            attrs.tracestate(),
            None,
            "an empty value removes the extension"
        );
        assert_eq!(attrs.id, "1");
        assert!(attrs.validate().is_ok());
        let extractor = AttributesExtractor(&attrs);
        assert_eq!(extractor.get("TRACEPARENT"), Some("00-x"));
        assert_eq!(extractor.keys(), vec!["traceparent"]);
    }
}
