//! OpenTelemetry (feature `otel`), with an in-memory span exporter: the
//! layer's outcome on the request span, token requests and introspection as
//! client spans, and the trace context on outgoing requests.
#![cfg(feature = "otel")]

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use common::discovery_validator;
use http::{Request, Response};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{InMemorySpanExporter, SdkTracerProvider, SpanData},
};
use tessera_authn::client::{ClientCredentials, InjectTokenLayer};
use tessera_authn::introspection::Introspection;
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authn::{AuthnLayer, Issuer, JwtValidator};
use tower::{ServiceBuilder, ServiceExt as _};
use tracing::{Instrument as _, subscriber::DefaultGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// An OpenTelemetry pipeline into memory, installed for this thread.
struct Traces {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _guard: DefaultGuard,
}

impl Traces {
    fn install() -> Self {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        Self {
            exporter,
            provider,
            _guard: guard,
        }
    }

    fn spans(&self, name: &str) -> Vec<SpanData> {
        self.provider.force_flush().unwrap();
        self.exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    fn span(&self, name: &str) -> SpanData {
        let mut spans = self.spans(name);
        assert_eq!(spans.len(), 1, "one span named {name}");
        spans.remove(0)
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Sends a request with `authorization` through `layer` inside a span named `name`.
async fn call(layer: AuthnLayer, name: &'static str, authorization: Option<String>) {
    let service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(bytes::Bytes::new()))
        });
    let mut request = Request::new(());
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.parse().unwrap());
    }
    service
        .oneshot(request)
        .instrument(tracing::info_span!("request", otel.name = name))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_layer_records_its_outcome_on_the_request_span() {
    let traces = Traces::install();
    let idp = TestIssuer::start().await.unwrap();
    let validator = discovery_validator(&idp);
    let bearer = || Some(format!("Bearer {}", idp.token().sign()));

    // The first request waits for the keys (the deferred path), the second does not.
    call(AuthnLayer::new(validator.clone()), "first", bearer()).await;
    call(AuthnLayer::new(validator.clone()), "second", bearer()).await;
    for name in ["first", "second"] {
        let span = traces.span(name);
        assert_eq!(
            attribute(&span, "tessera.authn.outcome").as_deref(),
            Some("authenticated")
        );
        assert_eq!(attribute(&span, "enduser.id"), None, "only when configured");
        assert_eq!(attribute(&span, "tessera.authn.refusal"), None);
    }

    let configured = AuthnLayer::new(validator.clone()).record_enduser_id();
    call(configured, "with id", bearer()).await;
    assert_eq!(
        attribute(&traces.span("with id"), "enduser.id").as_deref(),
        Some("user-1")
    );

    call(AuthnLayer::new(validator.clone()), "no token", None).await;
    let span = traces.span("no token");
    assert_eq!(
        attribute(&span, "tessera.authn.outcome").as_deref(),
        Some("refused")
    );
    assert_eq!(
        attribute(&span, "tessera.authn.refusal").as_deref(),
        Some("missing_token")
    );

    let expired = idp.token().claim("exp", 1_000_000_000).sign();
    let configured = AuthnLayer::new(validator.clone()).record_enduser_id();
    call(configured, "expired", Some(format!("Bearer {expired}"))).await;
    let span = traces.span("expired");
    assert_eq!(
        attribute(&span, "tessera.authn.refusal").as_deref(),
        Some("expired")
    );
    assert_eq!(
        attribute(&span, "enduser.id"),
        None,
        "never for a refused token"
    );

    call(AuthnLayer::optional(validator), "anonymous", None).await;
    assert_eq!(
        attribute(&traces.span("anonymous"), "tessera.authn.outcome").as_deref(),
        Some("anonymous")
    );
}

#[tokio::test]
async fn token_requests_are_client_spans_and_outgoing_requests_carry_the_trace() {
    let traces = Traces::install();
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(TestClient::new("orders", "s3cret").audiences(["billing"]));
    let credentials = ClientCredentials::builder("orders", "s3cret")
        .token_endpoint(&idp.token_url())
        .audience("billing")
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let downstream = {
        let seen = Arc::clone(&seen);
        ServiceBuilder::new()
            .layer(InjectTokenLayer::new(credentials))
            .service_fn(move |req: Request<String>| {
                *seen.lock().unwrap() = req.headers().get("traceparent").cloned();
                async { Ok::<_, Infallible>(Response::new(String::new())) }
            })
    };
    let outgoing = tracing::info_span!("call billing");
    let expected = {
        let cx = outgoing.context();
        let sc = cx.span().span_context().clone();
        format!("00-{}-{}-01", sc.trace_id(), sc.span_id())
    };
    downstream
        .oneshot(Request::new(String::new()))
        .instrument(outgoing)
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().as_ref().and_then(|v| v.to_str().ok()),
        Some(expected.as_str()),
        "the outgoing request carries the caller's trace"
    );

    let call = traces.span("call billing");
    let token = traces.span("POST");
    assert_eq!(token.span_kind, SpanKind::Client);
    assert_eq!(attribute(&token, "url.full"), Some(idp.token_url()));
    assert_eq!(
        attribute(&token, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attribute(&token, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attribute(&token, "error.type"), None);
    assert_eq!(
        token.span_context.trace_id(),
        call.span_context.trace_id(),
        "the token request is part of the caller's trace"
    );
}

#[tokio::test]
async fn introspection_is_a_client_span_in_the_request_trace() {
    let traces = Traces::install();
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(TestClient::new("orders-api", "s3cret"));
    let validator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .introspection(
                    Introspection::new("orders-api", "s3cret").endpoint(idp.introspection_url()),
                ),
        )
        .build()
        .unwrap();
    let token = idp.token().opaque();
    call(
        AuthnLayer::new(validator),
        "GET /orders",
        Some(format!("Bearer {token}")),
    )
    .await;

    let request = traces.span("GET /orders");
    let introspection = traces.span("POST");
    assert_eq!(introspection.span_kind, SpanKind::Client);
    assert_eq!(
        attribute(&introspection, "url.full"),
        Some(idp.introspection_url())
    );
    assert_eq!(
        attribute(&introspection, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        introspection.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(
        attribute(&request, "tessera.authn.outcome").as_deref(),
        Some("authenticated")
    );
}
