//! RabbitMQ throughput: lapin alone against Tessera, same broker, same load.
//!
//! Needs the broker at `AMQP_URL` (default the local one); without it, prints
//! a message and exits 0. Run with:
//!
//! ```sh
//! cargo bench -p tessera-event-bus --all-features --bench rabbitmq
//! ```
//!
//! Persistent 512-byte messages on a durable queue, throughput in elements/s.
//! - `amqp_publish/raw_lapin_confirms`: lapin, publisher confirms, a sliding
//!   window of 1,000 unconfirmed publishes.
//! - `amqp_publish/tessera_publish`: the same load through [`Publisher`]
//!   (envelope and `ce-` headers included), each publish confirmed, 1,000 in flight.
//! - `amqp_consume/raw_lapin`: a backlog consumed by lapin with manual acks,
//!   prefetch 200, acks grouped with `multiple`.
//! - `amqp_consume/tessera_subscription`: the same backlog through the
//!   subscription alone (`next`, then `ack`), to tell the router's share.
//! - `amqp_consume/tessera_router`: the same backlog through a [`Router`]
//!   with a trivial handler, prefetch 200.
#![allow(clippy::print_stdout, missing_docs)] // a bench binary reports on stdout

#[path = "support/amqp.rs"]
mod amqp;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use amqp::raw_properties;
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::{StreamExt, stream::FuturesUnordered};
use lapin::{
    Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueuePurgeOptions,
    },
    types::FieldTable,
};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Attributes, Envelope, EventContext, Publisher, RawEvent, Router, SubscribeOptions, Subscriber,
    rabbitmq::{RabbitBus, RabbitConfig},
    testkit::amqp_url,
};
use tokio::runtime::Runtime;

const WINDOW: usize = 1_000;
const PUBLISH_BATCH: u64 = 5_000;
const BACKLOG: u64 = 5_000;
const PREFETCH: u16 = 200;

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
    let mut a = Attributes::new(Attributes::new_id(), "/bench", "tessera.bench.blob.v1");
    a.time = Some(time::OffsetDateTime::now_utc());
    a.subject = Some("user-1".to_owned());
    a.datacontenttype = Some("application/json".to_owned());
    a.set_correlation_id("bench-correlation");
    RawEvent::new(a, body.clone())
}

struct Setup {
    bus: RabbitBus,
    channel: lapin::Channel,
    _conn: Connection,
    group: String,
}

async fn setup() -> Setup {
    let name = format!("tessera-bench-{}", uuid::Uuid::new_v4().simple());
    let config = RabbitConfig::new(amqp_url())
        .exchange(format!("{name}.events"))
        .connection_name(name.clone())
        .temporary_topology(Duration::from_secs(60));
    let bus = RabbitBus::connect(config).await.expect("broker");
    let group = format!("{name}.group");
    // Declares the durable queue and binds it.
    let mut sub = bus
        .subscriber()
        .subscribe(
            SubscribeOptions::new(&group)
                .event_type(Blob::TYPE_NAME)
                .prefetch(PREFETCH),
        )
        .await
        .expect("subscribe");
    tessera_event_bus::Subscription::close(&mut *sub)
        .await
        .expect("close");
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    Setup {
        bus,
        channel,
        _conn: conn,
        group,
    }
}

trait TypeName {
    const TYPE_NAME: &'static str;
}
impl<E: tessera_event_bus::Event> TypeName for E {
    const TYPE_NAME: &'static str = E::TYPE;
}

/// lapin alone: confirms with a sliding window of unconfirmed publishes.
async fn raw_publish(s: &Setup, n: u64, body: &Bytes) {
    let exchange: lapin::types::ShortString = s.bus.exchange().into();
    let mut window: FuturesUnordered<lapin::PublisherConfirm> = FuturesUnordered::new();
    for _ in 0..n {
        if window.len() >= WINDOW {
            let confirm = window.next().await.unwrap().expect("confirm");
            assert!(confirm.is_ack());
        }
        let props = raw_properties(&raw_event(body));
        let confirm = s
            .channel
            .basic_publish(
                exchange.clone(),
                Blob::TYPE_NAME.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                props,
            )
            .await
            .expect("publish");
        window.push(confirm);
    }
    while let Some(confirm) = window.next().await {
        assert!(confirm.expect("confirm").is_ack());
    }
}

/// Tessera: each publish awaits its own confirm; 1,000 publishes in flight.
async fn tessera_publish(publisher: &Arc<dyn Publisher>, n: u64, body: &Bytes) {
    let mut window = FuturesUnordered::new();
    for _ in 0..n {
        if window.len() >= WINDOW {
            let published: Result<(), tessera_event_bus::BusError> = window.next().await.unwrap();
            published.expect("publish");
        }
        let event = raw_event(body);
        let publisher = Arc::clone(publisher);
        window.push(async move { publisher.publish(event).await });
    }
    while let Some(result) = window.next().await {
        result.expect("publish");
    }
}

async fn purge(s: &Setup) {
    s.channel
        .queue_purge(s.group.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
}

async fn raw_consume(s: &Setup, n: u64) {
    let channel = s._conn.create_channel().await.expect("channel");
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            s.group.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut got = 0;
    while got < n {
        let delivery = consumer.next().await.expect("open").expect("delivery");
        got += 1;
        // Ack the last 50 at once, and whatever is left at the end.
        if got % 50 == 0 || got == n {
            delivery
                .ack(BasicAckOptions { multiple: true })
                .await
                .expect("ack");
        }
    }
    channel.close(200, "done".into()).await.expect("close");
}

/// The subscription alone (no router): `next`, then an awaited ack, one at a time.
async fn subscription_consume(s: &Setup, n: u64) {
    let subscriber = s.bus.subscriber();
    let mut sub = subscriber
        .subscribe(
            SubscribeOptions::new(&s.group)
                .event_type(Blob::TYPE_NAME)
                .prefetch(PREFETCH),
        )
        .await
        .expect("subscribe");
    for _ in 0..n {
        let delivery = sub.next().await.expect("next").expect("open");
        delivery.ack().await.expect("ack");
    }
    sub.close().await.expect("close");
}

async fn tessera_consume(s: &Setup, n: u64) {
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (h, d) = (Arc::clone(&handled), Arc::clone(&done));
    let router = Router::new(Arc::new(s.bus.subscriber()), s.group.clone())
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

/// Who consumes the backlog in `amqp_consume`.
#[derive(Clone, Copy)]
enum Consumer {
    RawLapin,
    Subscription,
    Router,
}

impl Consumer {
    fn id(self) -> &'static str {
        match self {
            Self::RawLapin => "raw_lapin",
            Self::Subscription => "tessera_subscription",
            Self::Router => "tessera_router",
        }
    }

    async fn consume(self, s: &Setup, n: u64) {
        match self {
            Self::RawLapin => raw_consume(s, n).await,
            Self::Subscription => subscription_consume(s, n).await,
            Self::Router => tessera_consume(s, n).await,
        }
    }
}

fn benches(c: &mut Criterion, rt: &Runtime) {
    let s = rt.block_on(setup());
    let publisher: Arc<dyn Publisher> = Arc::new(s.bus.publisher());
    let body = body();
    assert_eq!(body.len(), 512);

    let mut group = c.benchmark_group("amqp_publish");
    group.throughput(Throughput::Elements(PUBLISH_BATCH));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("raw_lapin_confirms", |b| {
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

    let mut group = c.benchmark_group("amqp_consume");
    group.throughput(Throughput::Elements(BACKLOG));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for consumer in [Consumer::RawLapin, Consumer::Subscription, Consumer::Router] {
        group.bench_function(consumer.id(), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        raw_publish(&s, BACKLOG, &body).await;
                        let start = Instant::now();
                        consumer.consume(&s, BACKLOG).await;
                        total += start.elapsed();
                    }
                    total
                })
            });
        });
    }
    group.finish();
    rt.block_on(async {
        purge(&s).await;
        let _ = s
            .channel
            .queue_delete(s.group.as_str().into(), Default::default())
            .await;
        let _ = s
            .channel
            .queue_delete(
                format!("{}.parking-lot", s.group).as_str().into(),
                Default::default(),
            )
            .await;
        s.bus.close().await;
    });
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reachable = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(3),
            Connection::connect(&amqp_url(), ConnectionProperties::default()),
        )
        .await
        .is_ok_and(|c| c.is_ok())
    });
    if !reachable {
        println!("RabbitMQ is not reachable at AMQP_URL; skipping the rabbitmq benches");
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &rt);
    c.final_summary();
}
