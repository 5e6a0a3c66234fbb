//! Injecting and extracting a trace context through the application's
//! global text map propagator.

use opentelemetry::{Context, global};

use super::carrier::{AttributesExtractor, AttributesInjector};
use crate::Attributes;

/// Writes `cx` into the event's extensions with the global propagator.
pub fn inject_context(cx: &Context, attributes: &mut Attributes) {
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut AttributesInjector(attributes));
    });
}

/// The context the event carries, read with the global propagator; an
/// empty context when it carries none (or an invalid one).
pub fn extract_context(attributes: &Attributes) -> Context {
    global::get_text_map_propagator(|propagator| {
        propagator.extract(&AttributesExtractor(attributes))
    })
}
