//! `--trace`: every span of the run recorded in memory (OpenTelemetry SDK,
//! in-memory exporter, W3C propagation between the services), and the
//! trace of the rename printed as an indented tree, so the path of an event
//! shows without a collector.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The recording pipeline, installed for the whole process.
pub(crate) struct Recorder {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl Recorder {
    /// Installs the pipeline as the global subscriber and propagator.
    pub(crate) fn install() -> Self {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("demo")))
            .init();
        Self { exporter, provider }
    }

    /// The tree of the trace that holds the first request named `root`
    /// (service, span, duration), one span per line.
    pub(crate) fn tree_of(&self, root: &str) -> Result<Vec<String>, String> {
        self.provider.force_flush().map_err(|e| e.to_string())?;
        let spans = self
            .exporter
            .get_finished_spans()
            .map_err(|e| e.to_string())?;
        let first = spans
            .iter()
            .filter(|s| s.name == root)
            .min_by_key(|s| s.start_time)
            .ok_or_else(|| format!("no span named {root:?} was recorded"))?;
        let trace_id: TraceId = first.span_context.trace_id();
        let mut in_trace: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .collect();
        in_trace.sort_by_key(|s| s.start_time);
        let ids: Vec<SpanId> = in_trace.iter().map(|s| s.span_context.span_id()).collect();
        let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
        let mut roots = Vec::new();
        for span in &in_trace {
            if ids.contains(&span.parent_span_id) {
                children.entry(span.parent_span_id).or_default().push(span);
            } else {
                roots.push(*span);
            }
        }
        let mut lines = vec![format!("trace {trace_id}")];
        for span in roots {
            walk(span, "?", 0, &children, &mut lines);
        }
        Ok(lines)
    }
}

/// Appends `span` and its children, depth first.
fn walk(
    span: &SpanData,
    parent_service: &str,
    depth: usize,
    children: &HashMap<SpanId, Vec<&SpanData>>,
    lines: &mut Vec<String>,
) {
    let service = service_of(span).unwrap_or(parent_service).to_owned();
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO);
    let name = format!("{}{}", "  ".repeat(depth), span.name);
    lines.push(format!(
        "{service:<16} {name:<60} {:>8.2} ms",
        duration.as_secs_f64() * 1000.0
    ));
    for child in children
        .get(&span.span_context.span_id())
        .into_iter()
        .flatten()
    {
        walk(child, &service, depth + 1, children, lines);
    }
}

/// Which service a span belongs to, where the span says it: a request's
/// route, or the consumer group of a delivery. Other spans belong to their
/// parent's service (all services share this process and its tracer).
fn service_of(span: &SpanData) -> Option<&'static str> {
    let attribute = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    if attribute("messaging.consumer.group.name").as_deref() == Some(comment_service::GROUP) {
        return Some("comment-service");
    }
    let route = attribute("http.route")?;
    if route.starts_with("/users") {
        Some("user-service")
    } else if route.starts_with("/posts") || route.starts_with("/comments") {
        Some("comment-service")
    } else if route.starts_with("/graphql") {
        Some("gateway")
    } else {
        None
    }
}
