//! The outbox relay from PostgreSQL to RabbitMQ with publisher confirms,
//! against raw confirmed publishing of the same batches in the same run, and
//! commit → delivery latency through the broker.
//!
//! Run with:
//! `cargo bench -p tessera-event-bus --features postgres,rabbitmq --bench outbox_rabbitmq`
//! (needs PostgreSQL at `DATABASE_URL` and RabbitMQ at `AMQP_URL`; without
//! either the bench says so and exits 0).
#![allow(clippy::print_stdout, missing_docs)]

#[path = "support/outbox.rs"]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Envelope, Publisher, RawEvent, SubscribeOptions, Subscriber,
    outbox::{Outbox, TableName},
    rabbitmq::{RabbitBus, RabbitConfig},
};
use tokio::runtime::Runtime;

use self::support::{BATCH, bench_relay_round, commit_to_delivery, print_latency};

const TYPE: &str = "com.example.outbox_bench.v1";

#[derive(Debug, Serialize, Deserialize)]
struct Bench {
    user_id: String,
    n: usize,
    padding: String,
}
tessera_event_bus::event!(Bench => "com.example.outbox_bench.v1", subject = user_id);

fn envelope(n: usize) -> Envelope<Bench> {
    Envelope::new(
        "/bench",
        Bench {
            user_id: format!("u{}", n % 10),
            n,
            padding: "x".repeat(400),
        },
    )
}

/// A consumer group that acks everything, so mandatory publishes route and
/// the queue never grows; sends the arrival time of each delivery.
async fn drain(bus: &RabbitBus) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    let mut sub = bus
        .subscriber()
        .subscribe(
            SubscribeOptions::new("outbox-bench")
                .event_type(TYPE)
                .prefetch(500),
        )
        .await
        .expect("subscribe");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(d)) = sub.next().await {
            let _ = tx.send(Instant::now());
            let _ = d.ack().await;
        }
    });
    rx
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    let db_url = support::database_url();
    let amqp_url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let pool = rt.block_on(support::connect(&db_url));
    let Ok(pool) = pool else {
        println!("outbox_rabbitmq bench skipped: no PostgreSQL at {db_url}");
        return;
    };
    let exchange = format!("tessera.bench.outbox.{}", std::process::id());
    let bus = rt.block_on(RabbitBus::connect(
        RabbitConfig::new(&amqp_url)
            .exchange(&exchange)
            .temporary_topology(Duration::from_secs(60)),
    ));
    let Ok(bus) = bus else {
        println!("outbox_rabbitmq bench skipped: no RabbitMQ at {amqp_url}");
        return;
    };
    let mut arrivals = rt.block_on(drain(&bus));
    let schema = format!("tessera_bench_amqp_{}", std::process::id());
    let outbox = Outbox::new(TableName::new(&schema, "outbox").expect("table name"));
    rt.block_on(outbox.migrate(&pool)).expect("migrate");
    let publisher: Arc<dyn Publisher> = Arc::new(bus.publisher());

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("outbox_rabbitmq");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(8));

    // Raw: the batch of 100 ready events, published with confirms, no database.
    group.bench_function("raw_publish_all_100", |b| {
        let events: Vec<RawEvent> = (0..BATCH)
            .map(|n| {
                envelope(n)
                    .encode(&tessera_event_bus::JsonCodec)
                    .expect("encode")
            })
            .collect();
        b.iter(|| {
            rt.block_on(publisher.publish_all(events.clone()))
                .expect("publish");
        });
    });

    // Relay: one round over 100 committed rows: claim, publish with confirms, mark sent.
    bench_relay_round(
        &mut group,
        &rt,
        &pool,
        &outbox,
        Arc::clone(&publisher),
        envelope,
    );
    group.finish();

    // Latency: commit → the consumer receives it from RabbitMQ, relay woken by NOTIFY.
    let latencies = rt.block_on(async {
        while arrivals.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(500)).await;
        while arrivals.try_recv().is_ok() {}
        commit_to_delivery(
            &pool,
            &outbox,
            Arc::clone(&publisher),
            &mut arrivals,
            300,
            envelope,
        )
        .await
    });
    print_latency("LISTEN/NOTIFY, RabbitMQ with confirms", latencies);

    rt.block_on(async {
        let _ = sqlx::query(&format!(r#"DROP SCHEMA "{schema}" CASCADE"#))
            .execute(&pool)
            .await;
        bus.close().await;
    });
    c.final_summary();
}
