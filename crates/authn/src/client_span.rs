//! [`ClientSpan`]: token requests and introspection as HTTP client spans,
//! and [`propagate`]: the trace context on outgoing requests (feature
//! `otel`; without it, nothing is recorded or added and this costs nothing).
//!
//! A client span follows the OpenTelemetry HTTP conventions: named after the
//! method, kind CLIENT, with `http.request.method`, `server.address`,
//! `server.port`, `url.full` (without query or credentials),
//! `http.response.status_code`, and `error.type` on failure.

// Without `otel` the methods record nothing and ignore `self`.
#![cfg_attr(not(feature = "otel"), allow(clippy::unused_self))]

/// The span of one request to the identity provider.
#[derive(Debug)]
pub(crate) struct ClientSpan {
    #[cfg(feature = "otel")]
    span: tracing::Span,
}

impl ClientSpan {
    /// Opens the span of a `method` request to `url`.
    pub(crate) fn start(_method: &str, _url: &url::Url) -> Self {
        Self {
            #[cfg(feature = "otel")]
            span: {
                let mut full = _url.clone();
                full.set_query(None);
                full.set_fragment(None);
                let _ = full.set_username("");
                let _ = full.set_password(None);
                tracing::info_span!(
                    "tessera.authn.http",
                    "otel.name" = _method,
                    "otel.kind" = "client",
                    "otel.status_code" = tracing::field::Empty,
                    "http.request.method" = _method,
                    "server.address" = _url.host_str(),
                    "server.port" = _url.port_or_known_default(),
                    "url.full" = full.as_str(),
                    "http.response.status_code" = tracing::field::Empty,
                    "error.type" = tracing::field::Empty,
                )
            },
        }
    }

    /// The headers that carry this span's context to the server.
    pub(crate) fn trace_headers(&self) -> http::HeaderMap {
        #[cfg(feature = "otel")]
        {
            let mut headers = http::HeaderMap::new();
            self.span.in_scope(|| propagate(&mut headers));
            headers
        }
        #[cfg(not(feature = "otel"))]
        http::HeaderMap::new()
    }

    /// Runs `request` inside the span.
    pub(crate) async fn run<T>(&self, request: impl Future<Output = T>) -> T {
        #[cfg(feature = "otel")]
        {
            use tracing::Instrument as _;
            request.instrument(self.span.clone()).await
        }
        #[cfg(not(feature = "otel"))]
        request.await
    }

    /// The answer's status (an error from 500 on).
    pub(crate) fn status(&self, _status: u16) {
        #[cfg(feature = "otel")]
        {
            self.span.record("http.response.status_code", _status);
            if _status >= 500 {
                self.span.record("error.type", _status.to_string().as_str());
                self.span.record("otel.status_code", "error");
            }
        }
    }

    /// The request failed before an answer (connection, timeout).
    pub(crate) fn unreachable(&self) {
        #[cfg(feature = "otel")]
        {
            self.span.record("error.type", "unreachable");
            self.span.record("otel.status_code", "error");
        }
    }
}

/// Writes the current trace context into `headers` with the global
/// propagator (W3C `traceparent` / `tracestate` with the usual setup).
#[cfg(any(feature = "client", feature = "otel"))]
pub(crate) fn propagate(_headers: &mut http::HeaderMap) {
    #[cfg(feature = "otel")]
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(_headers));
        });
    }
}
