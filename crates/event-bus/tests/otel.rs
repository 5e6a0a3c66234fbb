//! OpenTelemetry traces across publish and consume (feature `otel`), with an
//! in-memory span exporter: the producer's and the consumer's spans, their
//! attributes, and one trace from a request through the outbox to a handler.
#![cfg(feature = "otel")]

mod common;

use std::{sync::Arc, time::Duration};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{InMemorySpanExporter, SdkTracerProvider, SpanData},
};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Envelope, EventContext, EventPublisher, HandlerError, Router,
    memory::MemoryBus,
    router::{RetryPolicy, RouteOptions},
};
use tokio::sync::mpsc;
use tracing::{Instrument as _, subscriber::DefaultGuard};
use tracing_subscriber::layer::SubscriberExt as _;

const PATIENCE: Duration = Duration::from_secs(5);

/// One test at a time: each installs its own subscriber for its thread, but
/// `tracing` keeps whether a callsite is enabled in process-wide state shared
/// by every subscriber alive, so a test whose subscriber filters the
/// `publish` span out can see it enabled while another test runs (a service
/// has one subscriber; the tests have six).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const USER_DELETED: &str = "com.example.user.deleted.v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserDeleted {
    user_id: String,
}
tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);

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

    /// Every finished span.
    fn spans(&self) -> Vec<SpanData> {
        self.provider.force_flush().unwrap();
        self.exporter.get_finished_spans().unwrap()
    }

    /// The finished span named `name`; fails unless there is exactly one.
    fn span(&self, name: &str) -> SpanData {
        let spans = self.spans();
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(
            found.len(),
            1,
            "one span named {name:?} among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        found[0].clone()
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// A span's trace and span id.
fn ids(span: &SpanData) -> (TraceId, SpanId) {
    (span.span_context.trace_id(), span.span_context.span_id())
}

/// The trace and span ids a span links to.
fn linked(span: &SpanData) -> Vec<(TraceId, SpanId)> {
    span.links
        .links
        .iter()
        .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
        .collect()
}

fn assert_attributes(span: &SpanData, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert_eq!(
            attribute(span, key).as_deref(),
            Some(*value),
            "{key} on {:?}: {:?}",
            span.name,
            span.attributes
        );
    }
}

/// Runs a router of group `comments` on `bus` with `handler` until one
/// delivery was handled (its result sent on the channel), then stops it.
async fn consume_one(
    bus: &MemoryBus,
    configure: impl FnOnce(Router) -> Router,
    fail: bool,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = configure(Router::new(Arc::new(bus.subscriber()), "comments")).handle_with(
        move |env: Envelope<UserDeleted>, _ctx: EventContext| {
            let tx = tx.clone();
            async move {
                tx.send(env.data().user_id.clone()).unwrap();
                if fail {
                    Err(HandlerError::permanent("no such user"))
                } else {
                    Ok(())
                }
            }
        },
        RouteOptions::new().retry(RetryPolicy::none()),
    );
    let handle = router.start().await.unwrap();
    tokio::spawn(async move {
        tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .unwrap()
            .unwrap();
        handle.shutdown().await.unwrap();
    })
}

async fn publish_in_request(bus: &MemoryBus) -> TraceId {
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/users");
    let request = tracing::info_span!("PATCH /users/me", otel.kind = "server");
    let trace_id = {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        request.context().span().span_context().trace_id()
    };
    events
        .publish(UserDeleted {
            user_id: "u1".into(),
        })
        .instrument(request)
        .await
        .unwrap();
    trace_id
}

#[tokio::test]
async fn publish_and_process_spans_form_one_trace_when_the_producer_is_the_parent() {
    let _serial = SERIAL.lock().await;
    let traces = Traces::install();
    let bus = MemoryBus::new();
    let consumer = consume_one(&bus, Router::producer_as_parent, false).await;
    let trace_id = publish_in_request(&bus).await;
    consumer.await.unwrap();

    let request = traces.span("PATCH /users/me");
    let publish = traces.span(&format!("publish {USER_DELETED}"));
    let process = traces.span(&format!("process {USER_DELETED}"));
    assert_eq!(request.span_context.trace_id(), trace_id);
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(publish.span_context.trace_id(), trace_id);
    assert_eq!(publish.parent_span_id, request.span_context.span_id());
    assert_attributes(
        &publish,
        &[
            ("messaging.system", "memory"),
            ("messaging.destination.name", USER_DELETED),
            ("messaging.operation.type", "send"),
        ],
    );
    assert!(attribute(&publish, "messaging.message.id").is_some());
    assert_eq!(attribute(&publish, "error.type"), None);

    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.span_context.trace_id(), trace_id);
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    assert!(process.parent_span_is_remote);
    assert_attributes(
        &process,
        &[
            ("messaging.system", "memory"),
            ("messaging.destination.name", USER_DELETED),
            ("messaging.operation.type", "process"),
            ("messaging.consumer.group.name", "comments"),
        ],
    );
    assert_eq!(
        attribute(&process, "messaging.message.id"),
        attribute(&publish, "messaging.message.id")
    );
    assert_eq!(
        linked(&process),
        [ids(&publish)],
        "the process span links to the publish"
    );
}

#[tokio::test]
async fn the_process_span_links_to_the_producer_without_joining_its_trace_by_default() {
    let _serial = SERIAL.lock().await;
    let traces = Traces::install();
    let bus = MemoryBus::new();
    let consumer = consume_one(&bus, |r| r, false).await;
    let trace_id = publish_in_request(&bus).await;
    consumer.await.unwrap();

    let publish = traces.span(&format!("publish {USER_DELETED}"));
    let process = traces.span(&format!("process {USER_DELETED}"));
    assert_ne!(process.span_context.trace_id(), trace_id);
    assert_eq!(linked(&process), [ids(&publish)]);
}

#[tokio::test]
async fn a_failed_handler_marks_the_process_span_with_its_error_type() {
    let _serial = SERIAL.lock().await;
    let traces = Traces::install();
    let bus = MemoryBus::new();
    let consumer = consume_one(&bus, Router::producer_as_parent, true).await;
    publish_in_request(&bus).await;
    consumer.await.unwrap();
    // The router's shutdown waited for the delivery, so its span has ended.
    let process = traces.span(&format!("process {USER_DELETED}"));
    assert_eq!(
        attribute(&process, "error.type").as_deref(),
        Some("permanent")
    );
    assert!(matches!(process.status, Status::Error { .. }));
}

/// HTTP request → outbox enqueue → relay publish → handler: one trace, each
/// span the child of the one before.
#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_request_through_the_outbox_and_the_relay_is_one_trace_to_the_handler() {
    let _serial = SERIAL.lock().await;
    use common::outbox::{TYPE, TestDb, UserChanged, event};
    use tessera_event_bus::outbox::OutboxRelay;

    let traces = Traces::install();
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = Router::new(Arc::new(bus.subscriber()), "comments")
        .producer_as_parent()
        .handle(move |env: Envelope<UserChanged>, _ctx: EventContext| {
            let tx = tx.clone();
            async move {
                tx.send(env.data().n).unwrap();
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();

    let request = tracing::info_span!("PATCH /users/me", otel.kind = "server");
    async {
        let mut tx = db.pool.begin().await.unwrap();
        outbox.enqueue(&mut tx, &event("u1", 1)).await.unwrap();
        tx.commit().await.unwrap();
    }
    .instrument(request)
    .await;
    // The relay runs outside any request: the row carries the trace.
    let relay = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(bus.publisher()));
    let report = relay.publish_pending().await.unwrap();
    assert_eq!(report.published, 1);
    assert_eq!(
        tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap(),
        Some(1)
    );
    router.shutdown().await.unwrap();

    let request = traces.span("PATCH /users/me");
    let create = traces.span(&format!("create {}.outbox", db.schema));
    let publish = traces.span(&format!("publish {TYPE}"));
    let process = traces.span(&format!("process {TYPE}"));
    let trace_id = request.span_context.trace_id();
    for span in [&create, &publish, &process] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    assert_eq!(create.parent_span_id, request.span_context.span_id());
    assert_eq!(create.span_kind, SpanKind::Producer);
    assert_attributes(&create, &[("messaging.operation.type", "create")]);
    assert_eq!(publish.parent_span_id, create.span_context.span_id());
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    assert_eq!(linked(&process), [ids(&publish)]);
    let message_id = attribute(&create, "messaging.message.id");
    assert!(message_id.is_some());
    assert_eq!(attribute(&publish, "messaging.message.id"), message_id);
    assert_eq!(attribute(&process, "messaging.message.id"), message_id);
    db.cleanup().await;
}

#[tokio::test]
async fn a_filtered_out_publish_span_still_carries_the_callers_context() {
    let _serial = SERIAL.lock().await;
    use tracing_subscriber::{Layer as _, filter::filter_fn};
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_filter(filter_fn(|meta| meta.name() != "tessera.publish"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let bus = MemoryBus::new();
    let mut sub = tessera_event_bus::Subscriber::subscribe(
        &bus.subscriber(),
        tessera_event_bus::SubscribeOptions::new("audit").event_type(USER_DELETED),
    )
    .await
    .unwrap();
    publish_in_request(&bus).await;
    let delivery = sub.next().await.unwrap().unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "only the request span is recorded");
    let request = &spans[0];
    assert_eq!(
        delivery.event().attributes.traceparent(),
        Some(
            format!(
                "00-{}-{}-01",
                request.span_context.trace_id(),
                request.span_context.span_id()
            )
            .as_str()
        )
    );
}

/// On RabbitMQ the destination is the exchange and the routing key is recorded.
#[cfg(feature = "rabbitmq")]
#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn rabbitmq_spans_name_the_exchange_and_the_routing_key() {
    let _serial = SERIAL.lock().await;
    use common::rabbitmq::{config, unique};
    use tessera_event_bus::{BusError, rabbitmq::RabbitBus, testkit::amqp_url};

    let traces = Traces::install();
    let bus = RabbitBus::connect(config(amqp_url(), &unique("otel")))
        .await
        .unwrap();
    let exchange = bus.exchange().to_owned();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = Router::new(Arc::new(bus.subscriber()), unique("comments"))
        .producer_as_parent()
        .handle(move |env: Envelope<UserDeleted>, _ctx: EventContext| {
            let tx = tx.clone();
            async move {
                tx.send(env.data().user_id.clone()).unwrap();
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/users");
    let request = tracing::info_span!("PATCH /users/me");
    events
        .publish(UserDeleted {
            user_id: "u1".into(),
        })
        .instrument(request)
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap(),
        Some("u1".to_owned())
    );
    router.shutdown().await.unwrap();

    // Nobody is bound to this type: the publish fails and its span says why.
    #[derive(Debug, Serialize, Deserialize)]
    struct Unbound {
        id: String,
    }
    tessera_event_bus::event!(Unbound => "com.example.nobody.v1");
    let err = events
        .publish(Unbound { id: "x".into() })
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Unroutable(_)), "{err}");
    bus.close().await;

    let publishes = traces
        .spans()
        .into_iter()
        .filter(|s| s.name == format!("publish {exchange}"))
        .collect::<Vec<_>>();
    assert_eq!(publishes.len(), 2);
    let (ok, failed) = (&publishes[0], &publishes[1]);
    assert_attributes(
        ok,
        &[
            ("messaging.system", "rabbitmq"),
            ("messaging.destination.name", &exchange),
            ("messaging.rabbitmq.destination.routing_key", USER_DELETED),
            ("messaging.operation.type", "send"),
        ],
    );
    assert_eq!(attribute(ok, "error.type"), None);
    assert_attributes(
        failed,
        &[
            (
                "messaging.rabbitmq.destination.routing_key",
                "com.example.nobody.v1",
            ),
            ("error.type", "unroutable"),
        ],
    );
    assert!(matches!(failed.status, Status::Error { .. }));
    let process = traces.span(&format!("process {exchange}"));
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.parent_span_id, ok.span_context.span_id());
    assert_attributes(
        &process,
        &[
            ("messaging.system", "rabbitmq"),
            ("messaging.rabbitmq.destination.routing_key", USER_DELETED),
        ],
    );
}
