//! OpenTelemetry (feature `otel`): trace context through the global
//! propagator, and messaging spans after the OpenTelemetry semantic
//! conventions.
//!
//! - **Propagation.** Publishing injects the current context into the
//!   event's extensions with the propagator the application installed
//!   ([`opentelemetry::global::set_text_map_propagator`]): with W3C Trace
//!   Context these are the CloudEvents distributed tracing extension's
//!   `traceparent` and `tracestate`. Consuming extracts it the same way. No
//!   propagator installed means nothing is injected or extracted (the
//!   OpenTelemetry default); without a `tracing-opentelemetry` layer, events
//!   keep the `traceparent` they were given.
//! - **Spans** (`tracing` spans that `tracing-opentelemetry` exports):
//!   `publish <destination>` (PRODUCER) for each published event,
//!   `process <destination>` (CONSUMER) for each delivery the router
//!   handles, `create <outbox table>` (PRODUCER) for each outbox enqueue.
//!   They carry `messaging.system`, `messaging.destination.name`,
//!   `messaging.rabbitmq.destination.routing_key` (RabbitMQ),
//!   `messaging.message.id`, `messaging.operation.type`, and `error.type`
//!   on failure.
//! - **Parents.** A publish span is a child of the current span; without
//!   one, of the context the event carries (so the outbox relay's publish
//!   continues the trace of the request that enqueued the row). A process
//!   span links to the producer's context, and is its child when the router
//!   says [`Router::producer_as_parent`](crate::Router::producer_as_parent).
//!
//! ```
//! use opentelemetry::trace::TraceContextExt as _;
//! use opentelemetry_sdk::propagation::TraceContextPropagator;
//! use tessera_event_bus::{Attributes, otel};
//!
//! // The application installs its propagator once (here W3C Trace Context).
//! opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
//! let mut attrs = Attributes::new("1", "/users", "com.example.user.deleted.v1");
//! attrs.set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! let cx = otel::extract_context(&attrs);
//! assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//!
//! let mut next = Attributes::new("2", "/users", "com.example.user.deleted.v1");
//! otel::inject_context(&cx, &mut next);
//! assert_eq!(next.traceparent(), attrs.traceparent());
//! ```

mod carrier;
#[cfg(feature = "postgres")]
pub(crate) mod create;
pub(crate) mod process;
mod propagation;
pub(crate) mod publish;

pub use carrier::{AttributesExtractor, AttributesInjector};
pub use propagation::{extract_context, inject_context};
