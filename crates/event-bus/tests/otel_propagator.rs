//! The application's global propagator decides what an event carries
//! (feature `otel`). A test binary of its own: it changes the global
//! propagator, which other tests rely on.
#![cfg(all(feature = "otel", feature = "memory"))]

use std::sync::Arc;

use opentelemetry::{propagation::TextMapCompositePropagator, trace::TracerProvider as _};
use opentelemetry_sdk::{
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{EventPublisher, SubscribeOptions, Subscriber, memory::MemoryBus};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserDeleted {
    user_id: String,
}
tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);

/// Publishes one event in a request span and returns the delivered event's attributes.
async fn publish_in_request() -> tessera_event_bus::Attributes {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let bus = MemoryBus::new();
    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("audit").event_type("com.example.user.deleted.v1"))
        .await
        .unwrap();
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/users");
    events
        .publish(UserDeleted {
            user_id: "u1".into(),
        })
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    provider.force_flush().unwrap();
    let names: Vec<_> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == "publish com.example.user.deleted.v1"),
        "{names:?}"
    );
    sub.next()
        .await
        .unwrap()
        .unwrap()
        .event()
        .attributes
        .clone()
}

#[tokio::test]
async fn the_global_propagator_decides_what_the_event_carries() {
    // A propagator that writes nothing: no trace context on the event.
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![]));
    let attrs = publish_in_request().await;
    assert_eq!(attrs.traceparent(), None);

    // W3C Trace Context plus baggage: traceparent, and the baggage
    // propagator's field as an extension (empty baggage writes none).
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    let attrs = publish_in_request().await;
    let traceparent = attrs.traceparent().expect("a traceparent");
    assert!(
        traceparent.starts_with("00-") && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    assert_eq!(
        attrs.tracestate(),
        None,
        "an empty tracestate is not written"
    );
    assert!(attrs.validate().is_ok());
}
