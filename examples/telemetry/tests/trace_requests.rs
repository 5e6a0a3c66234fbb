//! The request middleware continues the caller's trace and names the span
//! after the route; calls out carry the current trace.

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn a_request_with_a_traceparent_continues_the_callers_trace() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let app = Router::new()
        .route(
            "/things/{id}",
            get(|| async {
                // A call out from inside the request carries its trace.
                telemetry::trace_headers()["traceparent"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            }),
        )
        .layer(axum::middleware::from_fn(telemetry::trace_requests));
    let request = Request::get("/things/42")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let outgoing = String::from_utf8(body.to_vec()).unwrap();

    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    let server = &spans[0];
    assert_eq!(server.name, "GET /things/{id}");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(
        server.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    let status = server
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.response.status_code")
        .map(|kv| kv.value.to_string());
    assert_eq!(status.as_deref(), Some("200"));
    assert_eq!(
        outgoing,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            server.span_context.span_id()
        )
    );
}
