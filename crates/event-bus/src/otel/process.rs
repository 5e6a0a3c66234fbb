//! `process <destination>` spans (CONSUMER): the router's delivery span,
//! joined to the producer's context.

use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::propagation::extract_context;
use crate::Attributes;

/// Names the delivery span `process <destination>`, links it to the context
/// the event carries and, when `as_parent`, makes it the span's parent.
///
/// Call it before the span is first entered: a started span keeps its parent.
pub(crate) fn join_producer(
    span: &Span,
    destination: &str,
    attributes: &Attributes,
    as_parent: bool,
) {
    // Nothing records the span: no name to give, no context to read.
    if span.is_disabled() {
        return;
    }
    span.record("otel.name", format!("process {destination}").as_str());
    let producer = extract_context(attributes);
    let producer_span = producer.span().span_context().clone();
    if !producer_span.is_valid() {
        return;
    }
    if as_parent {
        // Fails only when no OpenTelemetry layer records the span.
        let _ = span.set_parent(producer);
    }
    span.add_link(producer_span);
}
