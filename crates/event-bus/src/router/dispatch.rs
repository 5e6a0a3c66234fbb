//! One delivery: its span and context, the handler call (panics caught),
//! the settlement and the metrics.

use std::{future::Future, sync::Arc, time::Instant};

use futures_util::FutureExt as _;
use tracing::Instrument as _;

use super::{
    handler::{DeliveryRequest, EventContext, HandlerError},
    route::ActiveRoute,
    spans::DeliverySpans,
};
use crate::{Delivery, error::BusError, metrics, trace_context::TraceContext};

/// Handles one delivery and settles it.
///
/// The handler is called here, inside the delivery's span (or, when
/// `deferred`, at the returned future's first poll), and the returned
/// future drives it and settles the delivery.
pub(super) fn dispatch(
    delivery: Delivery,
    route: Option<&mut ActiveRoute>,
    group: &Arc<str>,
    source: &Arc<str>,
    spans: &DeliverySpans,
    deferred: bool,
) -> impl Future<Output = ()> + Send + use<> {
    let event = Arc::clone(delivery.shared_event());
    let parent = TraceContext::from_attributes(&event.attributes);
    let context = EventContext::for_delivery_under(
        Arc::clone(group),
        Arc::clone(source),
        Arc::clone(&event),
        delivery.attempt(),
        parent.as_ref(),
    );
    let destination = spans.messaging.destination_name(event.event_type());
    let span = tracing::info_span!(
        "tessera.event",
        otel.kind = "consumer",
        "otel.name" = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
        "messaging.system" = spans.messaging.system(),
        "messaging.destination.name" = destination,
        "messaging.operation.type" = "process",
        "messaging.message.id" = event.id(),
        "messaging.consumer.group.name" = &**group,
        "messaging.rabbitmq.destination.routing_key" = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        event.r#type = event.event_type(),
        event.id = event.id(),
        event.subject = event.subject(),
        group = &**group,
        attempt = delivery.attempt(),
        // Formatted only if the span is recorded.
        trace_id = %context.trace_context().display_trace_id(),
        span_id = %context.trace_context().display_span_id(),
        parent_span_id = parent
            .as_ref()
            .map(|parent| tracing::field::display(parent.display_span_id())),
    );
    if spans.messaging.is_rabbitmq() {
        span.record(
            "messaging.rabbitmq.destination.routing_key",
            event.event_type(),
        );
    }
    #[cfg(feature = "otel")]
    crate::otel::process::join_producer(
        &span,
        destination,
        &event.attributes,
        spans.producer_as_parent,
    );
    let started = Instant::now();
    let call = route.map(|route| {
        let _entered = span.enter();
        route.metrics.delivered();
        let request = DeliveryRequest::new(Arc::clone(&event), context);
        // A panic is a bug in the handler: retrying would panic again, so the
        // event goes to the dead letters with the message, and the router lives on.
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route.call(request, deferred)
        }))
        .map_err(|panic| HandlerError::permanent(panic_message(&*panic)));
        (call, Arc::clone(&route.metrics))
    });
    let group = Arc::clone(group);
    let failed_span = span.clone();
    async move {
        let ty = event.event_type();
        let Some((call, metrics)) = call else {
            metrics::delivered(ty, &group);
            metrics::unhandled(ty, &group);
            tracing::debug!("no handler for this event type; acking");
            settle(delivery.ack().await, "ack");
            return;
        };
        let result = match call {
            Ok(call) => std::panic::AssertUnwindSafe(call)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(HandlerError::permanent(panic_message(&*panic)))),
            Err(panicked) => Err(panicked),
        };
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                settle(delivery.ack().await, "ack");
                metrics.handled(seconds);
            }
            Err(error) => {
                metrics.duration(seconds);
                failed_span.record("error.type", error.kind());
                failed_span.record("otel.status_code", "error");
                tracing::warn!(%error, kind = error.kind(), "handler failed; dead-lettering");
                settle(delivery.dead_letter(error.to_string()).await, "dead-letter");
                metrics::dead_lettered(ty, &group, error.kind());
            }
        }
    }
    .instrument(span)
}

/// The dead letter reason of a handler panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("the handler panicked: {message}")
}

/// Logs a failed ack or dead-letter (the backend redelivers the event).
fn settle(result: Result<(), BusError>, what: &str) {
    if let Err(error) = result {
        // The backend redelivers an event whose settlement failed.
        tracing::warn!(%error, "could not {what} the delivery; it will be redelivered");
    }
}
