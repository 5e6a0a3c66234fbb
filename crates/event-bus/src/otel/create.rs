//! `create <outbox table>` spans (PRODUCER): an outbox enqueue, whose context
//! travels with the rows (in their `traceparent` / `tracestate` extensions)
//! to the relay's publish.

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::propagation::inject_context;
use crate::{Attributes, outbox::OutboxError};

/// Opens the span of enqueueing the events with these attributes into `table`.
pub(crate) fn start<'a>(
    table: &str,
    mut events: impl ExactSizeIterator<Item = &'a Attributes>,
) -> Span {
    let span = tracing::info_span!(
        "tessera.outbox.enqueue",
        "otel.name" = format!("create {table}").as_str(),
        "otel.kind" = "producer",
        "otel.status_code" = Empty,
        "messaging.destination.name" = table,
        "messaging.operation.type" = "create",
        "messaging.operation.name" = "enqueue",
        "messaging.message.id" = Empty,
        "messaging.batch.message_count" = Empty,
        "db.system.name" = "postgresql",
        "error.type" = Empty,
    );
    match (events.len(), events.next()) {
        (1, Some(one)) => {
            span.record("messaging.message.id", one.id.as_str());
        }
        (many, _) => {
            span.record("messaging.batch.message_count", many);
        }
    }
    span
}

/// Writes the enqueue span's context into an event's attributes (when an
/// OpenTelemetry layer records the span).
pub(crate) fn inject(span: &Span, attributes: &mut Attributes) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        inject_context(&cx, attributes);
    }
}

/// Records a failed enqueue.
pub(crate) fn failed(span: &Span, error: &OutboxError) {
    let error_type = match error {
        OutboxError::Database(_) => "database",
        OutboxError::InvalidEvent(_) => "invalid_event",
        OutboxError::Encode(_) => "encode",
        OutboxError::Wire(_) => "wire",
        OutboxError::TableName(_) => "table_name",
        OutboxError::InvalidConfig(_) => "invalid_config",
        OutboxError::Task(_) => "task",
    };
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
}
