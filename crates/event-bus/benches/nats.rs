//! NATS JetStream throughput: async-nats alone against Tessera, same server,
//! same load.
//!
//! Needs the server at `NATS_URL` (default the local one) with JetStream;
//! without it, prints a message and exits 0. Run with:
//!
//! ```sh
//! cargo bench -p tessera-event-bus --features nats,testkit --bench nats
//! ```
//!
//! 512-byte messages on a file-backed stream, throughput in elements/s.
//! - `nats_publish/raw_async_nats`: async-nats alone, JetStream publishes
//!   with a sliding window of 1,000 awaiting their acks, the same headers as
//!   Tessera writes (`ce-` attributes, `Content-Type`, `Nats-Msg-Id`).
//! - `nats_publish/tessera_publish`: the same load through [`Publisher`]
//!   (a new `RawEvent` per message, the wire mapping), each publish awaiting
//!   its ack, 1,000 in flight.
//! - `nats_consume/raw_async_nats`: a backlog consumed by async-nats alone
//!   from a durable pull consumer (explicit ack, `max_ack_pending` 200,
//!   batches of 200), every message acked.
//! - `nats_consume/tessera_router`: the same backlog through a [`Router`]
//!   with a trivial handler, prefetch 200; router start and shutdown inside
//!   each sample.
#![allow(clippy::print_stdout, missing_docs)] // a bench binary reports on stdout

#[path = "support/nats.rs"]
mod nats_support;

use std::{
    future::IntoFuture,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
    context::PublishAckFuture,
};
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::{StreamExt, TryStreamExt, stream::FuturesUnordered};
use nats_support::raw_headers;
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Attributes, Envelope, EventContext, Publisher, RawEvent, Router, SubscribeOptions, Subscriber,
    nats::{NatsBus, NatsConfig},
    testkit::nats_url,
};
use tokio::runtime::Runtime;

const WINDOW: usize = 1_000;
const PUBLISH_BATCH: u64 = 5_000;
const BACKLOG: u64 = 5_000;
const PREFETCH: u16 = 200;
const TYPE: &str = "tessera.bench.blob.v1";

#[derive(Debug, Serialize, Deserialize)]
struct Blob {
    data: String,
}
tessera_event_bus::event!(Blob => "tessera.bench.blob.v1");

/// A 512-byte JSON body that decodes into [`Blob`].
fn body() -> Bytes {
    let overhead = br#"{"data":""}"#.len();
    Bytes::from(format!(r#"{{"data":"{}"}}"#, "x".repeat(512 - overhead)))
}

fn raw_event(body: &Bytes) -> RawEvent {
    let mut a = Attributes::new(Attributes::new_id(), "/bench", TYPE);
    a.time = Some(time::OffsetDateTime::now_utc());
    a.subject = Some("user-1".to_owned());
    a.datacontenttype = Some("application/json".to_owned());
    a.set_correlation_id("bench-correlation");
    RawEvent::new(a, body.clone())
}

struct Setup {
    bus: NatsBus,
    js: jetstream::Context,
    subject: String,
    stream: String,
}

async fn setup() -> Setup {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let config = NatsConfig::new(nats_url())
        .stream(format!("TESSERA_BENCH_{id}"))
        .subject_prefix(format!("tessera.bench.{id}"))
        .parking_prefix(format!("tessera.bench-parking.{id}"))
        .connection_name(format!("tessera-bench-{id}"))
        .max_age(Duration::from_secs(3600));
    let bus = NatsBus::connect(config).await.expect("server");
    let subject = bus.subject_for(TYPE).expect("subject");
    let stream = bus.config().stream_name().to_owned();
    // The raw side has its own connection, as an application would.
    let client = async_nats::connect(nats_url()).await.expect("server");
    Setup {
        bus,
        js: jetstream::new(client),
        subject,
        stream,
    }
}

/// async-nats alone: a sliding window of publishes awaiting their acks.
async fn raw_publish(s: &Setup, n: u64, body: &Bytes) {
    let mut window = FuturesUnordered::new();
    for _ in 0..n {
        if window.len() >= WINDOW {
            let acked: Result<_, _> = window.next().await.expect("in flight");
            acked.expect("acked");
        }
        let headers = raw_headers(&raw_event(body));
        let ack: PublishAckFuture =
            s.js.publish_with_headers(s.subject.clone(), headers, body.clone())
                .await
                .expect("publish");
        window.push(ack.into_future());
    }
    while let Some(acked) = window.next().await {
        acked.expect("acked");
    }
}

/// Tessera: each publish awaits its own ack; 1,000 publishes in flight.
async fn tessera_publish(publisher: &Arc<dyn Publisher>, n: u64, body: &Bytes) {
    let mut window = FuturesUnordered::new();
    for _ in 0..n {
        if window.len() >= WINDOW {
            let published: Result<(), tessera_event_bus::BusError> = window.next().await.unwrap();
            published.expect("publish");
        }
        window.push(publisher.publish(raw_event(body)));
    }
    while let Some(result) = window.next().await {
        result.expect("publish");
    }
}

async fn purge(s: &Setup) {
    s.js.get_stream(&s.stream)
        .await
        .expect("stream")
        .purge()
        .await
        .expect("purge");
}

/// Deletes every consumer of the stream (after a consume sample).
async fn delete_consumers(s: &Setup) {
    let stream = s.js.get_stream(&s.stream).await.expect("stream");
    let names: Vec<String> = stream
        .consumer_names()
        .try_collect()
        .await
        .expect("consumers");
    for name in names {
        stream
            .delete_consumer(&name)
            .await
            .expect("delete consumer");
    }
}

/// A durable pull consumer for the raw side, created before its backlog.
async fn raw_consumer(s: &Setup) -> jetstream::consumer::PullConsumer {
    let stream = s.js.get_stream(&s.stream).await.expect("stream");
    stream
        .create_consumer(pull::Config {
            durable_name: Some(format!("raw-{}", uuid::Uuid::new_v4().simple())),
            filter_subject: s.subject.clone(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::New,
            max_ack_pending: i64::from(PREFETCH),
            ..Default::default()
        })
        .await
        .expect("consumer")
}

async fn raw_consume(consumer: &jetstream::consumer::PullConsumer, n: u64) {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(usize::from(PREFETCH))
        .messages()
        .await
        .expect("pull");
    for _ in 0..n {
        let message = messages.next().await.expect("open").expect("message");
        message.ack().await.expect("ack");
    }
}

/// Binds a new group to the type (its consumers start at new events).
async fn tessera_group(s: &Setup) -> String {
    let group = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let mut sub = s
        .bus
        .subscriber()
        .subscribe(
            SubscribeOptions::new(&group)
                .event_type(TYPE)
                .prefetch(PREFETCH),
        )
        .await
        .expect("subscribe");
    sub.close().await.expect("close");
    group
}

async fn tessera_consume(s: &Setup, group: &str, n: u64) {
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (h, d) = (Arc::clone(&handled), Arc::clone(&done));
    let router = Router::new(Arc::new(s.bus.subscriber()), group.to_owned())
        .prefetch(PREFETCH)
        .concurrency(usize::from(PREFETCH))
        .handle(move |_env: Envelope<Blob>, _ctx: EventContext| {
            let (h, d) = (Arc::clone(&h), Arc::clone(&d));
            async move {
                if h.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    d.notify_one();
                }
                Ok(())
            }
        })
        .start()
        .await
        .expect("router");
    done.notified().await;
    router.shutdown().await.expect("shutdown");
}

fn benches(c: &mut Criterion, rt: &Runtime) {
    let s = rt.block_on(setup());
    let publisher: Arc<dyn Publisher> = Arc::new(s.bus.publisher());
    let body = body();
    assert_eq!(body.len(), 512);

    let mut group = c.benchmark_group("nats_publish");
    group.throughput(Throughput::Elements(PUBLISH_BATCH));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("raw_async_nats", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    raw_publish(&s, PUBLISH_BATCH, &body).await;
                    total += start.elapsed();
                    purge(&s).await;
                }
                total
            })
        });
    });
    group.bench_function("tessera_publish", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    tessera_publish(&publisher, PUBLISH_BATCH, &body).await;
                    total += start.elapsed();
                    purge(&s).await;
                }
                total
            })
        });
    });
    group.finish();

    let mut group = c.benchmark_group("nats_consume");
    group.throughput(Throughput::Elements(BACKLOG));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("raw_async_nats", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let consumer = raw_consumer(&s).await;
                    raw_publish(&s, BACKLOG, &body).await;
                    let start = Instant::now();
                    raw_consume(&consumer, BACKLOG).await;
                    total += start.elapsed();
                    delete_consumers(&s).await;
                    purge(&s).await;
                }
                total
            })
        });
    });
    group.bench_function("tessera_router", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let group = tessera_group(&s).await;
                    raw_publish(&s, BACKLOG, &body).await;
                    let start = Instant::now();
                    tessera_consume(&s, &group, BACKLOG).await;
                    total += start.elapsed();
                    delete_consumers(&s).await;
                    purge(&s).await;
                }
                total
            })
        });
    });
    group.finish();
    rt.block_on(async {
        let parking = s.bus.config().parking_stream_name();
        let _ = s.js.delete_stream(&s.stream).await;
        let _ = s.js.delete_stream(&parking).await;
        s.bus.close().await;
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reachable = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), async_nats::connect(nats_url()))
            .await
            .is_ok_and(|c| c.is_ok())
    });
    if !reachable {
        println!("NATS is not reachable at NATS_URL; skipping the nats benches");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &rt);
    c.final_summary();
}
