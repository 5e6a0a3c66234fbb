//! Outbox relay throughput against raw publish throughput, and commit → delivery latency.
//!
//! Run with:
//! `cargo bench -p tessera-event-bus --features postgres --bench outbox`
//! (needs PostgreSQL at `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; without it the bench says so
//! and exits 0). The broker is the in-memory bus: it isolates the relay's own
//! cost (claim, publish, mark) from a broker's.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "support/outbox.rs"]
mod support;

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Attributes, Envelope, Publisher, RawEvent, SubscribeOptions, Subscriber,
    memory::{MemoryBus, MemoryConfig},
    outbox::{Outbox, TableName},
};
use tokio::runtime::Runtime;

use self::support::{BATCH, bench_relay_round, commit_to_delivery, print_latency};

const TYPE: &str = "com.example.bench.v1";

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

fn main() {
    let rt = Runtime::new().unwrap();
    let url = support::database_url();
    let pool = rt.block_on(support::connect(&url));
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
    let (bus, _rx) = rt.block_on(draining_bus());
    bench_relay_round(
        &mut group,
        &rt,
        &pool,
        &outbox,
        Arc::new(bus.publisher()),
        envelope,
    );
    group.finish();

    // Latency: commit returns → the consumer receives, relay woken by NOTIFY only.
    let latencies = rt.block_on(async {
        let (bus, mut rx) = draining_bus().await;
        commit_to_delivery(
            &pool,
            &outbox,
            Arc::new(bus.publisher()),
            &mut rx,
            500,
            envelope,
        )
        .await
    });
    print_latency("LISTEN/NOTIFY, in-memory bus", latencies);

    rt.block_on(async {
        sqlx::query(&format!(r#"DROP SCHEMA "{schema}" CASCADE"#))
            .execute(&pool)
            .await
            .unwrap();
    });
    c.final_summary();
}
