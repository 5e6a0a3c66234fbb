//! One GraphQL query is one trace: the gateway's server span continues the
//! caller's `traceparent`, and each downstream call is a client span of it
//! whose context reaches the downstream service. Spans are recorded with the
//! OpenTelemetry SDK's in-memory exporter (its own test binary: it installs
//! the global subscriber and propagator).

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use opentelemetry::trace::{SpanKind, TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tessera_authn::test_util::TestIssuer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn traceparent(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_query_is_one_trace_with_its_downstream_calls() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();

    let idp = TestIssuer::start().await.unwrap();
    // The downstream services note the trace context they are called with.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (users, comments) = (Arc::clone(&seen), Arc::clone(&seen));
    let downstream = Router::new()
        .route(
            "/users",
            get(move |headers: HeaderMap| async move {
                users
                    .lock()
                    .unwrap()
                    .push(("users".into(), traceparent(&headers)));
                axum::Json(json!([{"id": "u1", "display_name": "Alice"}]))
            }),
        )
        .route(
            "/posts/{post}/comments",
            get(move |headers: HeaderMap| async move {
                comments
                    .lock()
                    .unwrap()
                    .push(("comments".into(), traceparent(&headers)));
                axum::Json(json!([
                    {"id": "c1", "text": "hi", "author": {"id": "u1", "display_name": null}}
                ]))
            }),
        );
    let base = serve(downstream).await;
    let gateway = serve(gateway::app(
        idp.validator(),
        gateway::Downstream::new(base.parse().unwrap(), base.parse().unwrap()),
    ))
    .await;

    // The caller's trace: the gateway continues it.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let token = idp.token().subject("reader").sign();
    let response = reqwest::Client::new()
        .post(format!("{gateway}/graphql"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .body(
            json!({"query": "{ comments(postId: \"p1\") { id author { displayName } } }"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        body["data"]["comments"][0]["author"]["displayName"],
        "Alice"
    );

    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let trace_id = TraceId::from_hex(caller_trace).unwrap();
    let server = spans
        .iter()
        .find(|s| s.name == "POST /graphql")
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"));
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(
        server.span_context.trace_id(),
        trace_id,
        "the caller's trace"
    );
    assert_eq!(server.parent_span_id.to_string(), caller_span);
    assert!(
        server
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "http.response.status_code" && kv.value.as_str() == "200"),
        "{server:#?}"
    );

    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client && s.name == "GET")
        .collect();
    assert_eq!(
        clients.len(),
        2,
        "the comment and the user lookups: {spans:#?}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for client in &clients {
        assert_eq!(client.span_context.trace_id(), trace_id);
        // A descendant of the server span (the resolvers' spans may sit between).
        let mut parent = client.parent_span_id;
        let mut depth = 0;
        while parent != server.span_context.span_id() {
            let up = spans
                .iter()
                .find(|s| s.span_context.span_id() == parent)
                .unwrap_or_else(|| panic!("client span outside the request: {client:#?}"));
            parent = up.parent_span_id;
            depth += 1;
            assert!(depth < 16);
        }
        // The downstream saw this client span as its parent.
        let expected = format!("00-{caller_trace}-{}-01", client.span_context.span_id());
        assert!(
            seen.iter().any(|(_, tp)| *tp == expected),
            "{expected} not among {seen:?}"
        );
    }
}
