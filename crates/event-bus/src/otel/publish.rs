//! `publish <destination>` spans (PRODUCER): one per published event, whose
//! context is injected into the event.

use opentelemetry::trace::TraceContextExt as _;
use tracing::{Instrument as _, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::propagation::{extract_context, inject_context};
use crate::{BusError, Publisher, RawEvent, messaging::Messaging};

/// Which context a publish span continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parent {
    /// The current span; the event's own context only when there is none
    /// (an application publishing in a request).
    Current,
    /// The event's context when it carries one (the outbox relay: the row
    /// holds the context of the request that enqueued it).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Event,
}

/// Publishes `event` inside its `publish` span.
pub(crate) async fn publish(
    publisher: &dyn Publisher,
    mut event: RawEvent,
    parent: Parent,
) -> Result<(), BusError> {
    let span = start(&publisher.messaging(), &mut event, parent);
    let result = publisher.publish(event).instrument(span.clone()).await;
    finish(&span, result.as_ref().err());
    result
}

/// Publishes `events` with [`Publisher::publish_all`], each in its own
/// `publish` span spanning the batch.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) async fn publish_all(
    publisher: &dyn Publisher,
    mut events: Vec<RawEvent>,
    parent: Parent,
) -> Result<(), BusError> {
    let messaging = publisher.messaging();
    let spans: Vec<Span> = events
        .iter_mut()
        .map(|event| start(&messaging, event, parent))
        .collect();
    let result = publisher.publish_all(events).await;
    for span in &spans {
        finish(span, result.as_ref().err());
    }
    result
}

/// Opens the span of publishing `event` and writes its context into the event.
fn start(messaging: &Messaging, event: &mut RawEvent, parent: Parent) -> Span {
    let ty = event.event_type();
    let destination = messaging.destination_name(ty);
    let span = tracing::info_span!(
        "tessera.publish",
        "otel.name" = format!("publish {destination}").as_str(),
        "otel.kind" = "producer",
        "otel.status_code" = Empty,
        "messaging.system" = messaging.system(),
        "messaging.destination.name" = destination,
        "messaging.operation.type" = "send",
        "messaging.operation.name" = "publish",
        "messaging.message.id" = event.id(),
        "messaging.rabbitmq.destination.routing_key" = Empty,
        "error.type" = Empty,
    );
    // Our span is filtered out (or nothing records spans): the event still
    // carries the current span's context, if there is one.
    if span.is_disabled() {
        if parent == Parent::Current {
            let cx = Span::current().context();
            if cx.span().span_context().is_valid() {
                inject_context(&cx, &mut event.attributes);
            }
        }
        return span;
    }
    if messaging.is_rabbitmq() {
        span.record("messaging.rabbitmq.destination.routing_key", ty);
    }
    let carried = match parent {
        Parent::Event => true,
        Parent::Current => !Span::current().context().span().span_context().is_valid(),
    };
    if carried {
        let cx = extract_context(&event.attributes);
        if cx.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer records the span: nothing to continue then.
            let _ = span.set_parent(cx);
        }
    }
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        inject_context(&cx, &mut event.attributes);
    }
    span
}

/// Records the outcome on a publish span.
fn finish(span: &Span, error: Option<&BusError>) {
    if let Some(error) = error {
        span.record("error.type", error_type(error));
        span.record("otel.status_code", "error");
    }
}

/// `error.type` of a failed publish: the kind of [`BusError`].
pub(crate) fn error_type(error: &BusError) -> &'static str {
    match error {
        BusError::Closed => "closed",
        BusError::InvalidEvent(_) => "invalid_event",
        BusError::Unroutable(_) => "unroutable",
        BusError::Unsupported(_) => "unsupported",
        BusError::Rejected(_) => "rejected",
        BusError::InvalidSubscription(_) => "invalid_subscription",
        BusError::Connection(_) => "connection",
        BusError::Store(_) => "store",
        BusError::QueueMismatch { .. } => "queue_mismatch",
        BusError::StreamMismatch { .. } => "stream_mismatch",
        BusError::Wire(_) => "wire",
        BusError::Encode(_) => "encode",
    }
}
