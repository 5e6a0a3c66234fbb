//! The request span is at DEBUG: a service whose logs are at INFO and that
//! exports no traces does not open one per request. In its own test binary:
//! tracing caches each callsite's interest across the process, so another
//! test's subscriber (one that records everything) would change the answer.

use axum::{Router, body::Body, routing::get};
use http::Request;
use tower::ServiceExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn the_request_span_is_debug_so_logs_at_info_do_not_open_one() {
    use tracing_subscriber::{EnvFilter, Layer as _};
    for (directives, opened) in [("info", false), ("info,telemetry=debug", true)] {
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(EnvFilter::new(directives));
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(logs));
        let app = Router::new()
            .route(
                "/",
                get(|| async { (!tracing::Span::current().is_disabled()).to_string() }),
            )
            .layer(axum::middleware::from_fn(telemetry::trace_requests));
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 16)
            .await
            .unwrap();
        assert_eq!(body, opened.to_string(), "RUST_LOG={directives}");
    }
}
