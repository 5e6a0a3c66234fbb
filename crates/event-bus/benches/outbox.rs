//! Outbox relay throughput against raw publish throughput, and commit → delivery latency.
//!
//! Run with:
//! `cargo bench -p tessera-event-bus --features postgres --bench outbox`
//! (needs PostgreSQL at `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; without it the bench says so
//! and exits 0). The broker is the in-memory bus: it isolates the relay's own
//! cost (claim, publish, mark) from a broker's.
#![allow(clippy::print_stdout, missing_docs)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tessera_event_bus::{
    Attributes, Envelope, Publisher, RawEvent, SubscribeOptions, Subscriber,
    memory::{MemoryBus, MemoryConfig},
    outbox::{Outbox, OutboxRelay, TableName},
};
use tokio::runtime::Runtime;

const TYPE: &str = "com.example.bench.v1";
const BATCH: usize = 100;

#[derive(Debug, Serialize, Deserialize)]
struct Bench {
    user_id: String,
    n: usize,
}
tessera_event_bus::event!(Bench => "com.example.bench.v1", subject = user_id);

fn envelope(n: usize) -> Envelope<Bench> {
    Envelope::new(
        "/bench",
        Bench {
            user_id: format!("u{}", n % 10),
            n,
        },
    )
}

/// A bus whose group drains everything, so queues never fill.
async fn draining_bus() -> (MemoryBus, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
    let bus = MemoryBus::with_config(MemoryConfig::default().queue_capacity(1_000_000));
    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("bench").event_type(TYPE))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(d)) = sub.next().await {
            let _ = tx.send(Instant::now());
            let _ = d.ack().await;
        }
    });
    (bus, rx)
}

async fn enqueue(pool: &PgPool, outbox: &Outbox, n: usize) {
    let envs: Vec<_> = (0..n).map(envelope).collect();
    let mut tx = pool.begin().await.unwrap();
    outbox.enqueue_all(&mut tx, &envs).await.unwrap();
    tx.commit().await.unwrap();
}

fn main() {
    let rt = Runtime::new().unwrap();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pool = rt.block_on(async {
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&url)
            .await
    });
    let Ok(pool) = pool else {
        println!("outbox bench skipped: no PostgreSQL at {url}");
        return;
    };
    let schema = format!("tessera_bench_{}", std::process::id());
    let outbox = Outbox::new(TableName::new(&schema, "outbox").unwrap());
    rt.block_on(outbox.migrate(&pool)).unwrap();

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(BATCH as u64));

    // Raw: publish_all of 100 ready events, as the relay does, without the database.
    group.bench_function("raw_publish_all_100", |b| {
        let (bus, _rx) = rt.block_on(draining_bus());
        let publisher = bus.publisher();
        let events: Vec<RawEvent> = (0..BATCH)
            .map(|n| {
                let mut attrs = Attributes::new(n.to_string(), "/bench", TYPE);
                attrs.subject = Some(format!("u{}", n % 10));
                RawEvent::new(attrs, Bytes::from_static(br#"{"n":1}"#))
            })
            .collect();
        b.iter(|| rt.block_on(publisher.publish_all(events.clone())).unwrap());
    });

    // Relay: one round over 100 committed rows (claim, publish_all, mark sent).
    group.bench_function("relay_round_100", |b| {
        let (bus, _rx) = rt.block_on(draining_bus());
        let relay = OutboxRelay::new(&outbox, pool.clone(), Arc::new(bus.publisher()))
            .batch_size(BATCH as u32);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    enqueue(&pool, &outbox, BATCH).await;
                    let started = Instant::now();
                    let report = relay.publish_pending().await.unwrap();
                    total += started.elapsed();
                    assert_eq!(report.published, BATCH);
                }
                total
            })
        });
    });
    group.finish();

    // Latency: commit returns → the consumer receives, relay woken by NOTIFY only.
    let latencies = rt.block_on(async {
        let (bus, mut rx) = draining_bus().await;
        let relay = OutboxRelay::new(&outbox, pool.clone(), Arc::new(bus.publisher()))
            .poll_interval(Duration::from_secs(3600))
            .start()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut latencies = Vec::new();
        for n in 0..500 {
            let mut tx = pool.begin().await.unwrap();
            outbox.enqueue(&mut tx, &envelope(n)).await.unwrap();
            let committed = Instant::now();
            tx.commit().await.unwrap();
            let delivered = rx.recv().await.unwrap();
            if n >= 20 {
                latencies.push(delivered.saturating_duration_since(committed));
            }
        }
        relay.shutdown().await.unwrap();
        latencies
    });
    let mut sorted = latencies;
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "outbox commit->delivery latency over {} events (LISTEN/NOTIFY, in-memory bus): p50 {:.2} ms, p99 {:.2} ms",
        sorted.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );

    rt.block_on(async {
        sqlx::query(&format!(r#"DROP SCHEMA "{schema}" CASCADE"#))
            .execute(&pool)
            .await
            .unwrap();
    });
    c.final_summary();
}
