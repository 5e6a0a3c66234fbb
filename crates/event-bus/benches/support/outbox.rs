//! What the outbox benches share, whatever the broker: the database, the
//! relay round bench and the commit → delivery latency.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkGroup, measurement::WallTime};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tessera_event_bus::{
    Envelope, Event, Publisher,
    outbox::{Outbox, OutboxRelay},
};
use tokio::{runtime::Runtime, sync::mpsc::UnboundedReceiver};

/// Rows per relay round.
pub(crate) const BATCH: usize = 100;

/// `DATABASE_URL`, or the local test database.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A pool of 8 connections that gives up after 3 s when there is no database.
pub(crate) async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
}

/// Commits the events `envelope(0..n)` in one transaction.
async fn enqueue<E: Event>(
    pool: &PgPool,
    outbox: &Outbox,
    n: usize,
    envelope: fn(usize) -> Envelope<E>,
) {
    let envs: Vec<_> = (0..n).map(envelope).collect();
    let mut tx = pool.begin().await.expect("begin");
    outbox.enqueue_all(&mut tx, &envs).await.expect("enqueue");
    tx.commit().await.expect("commit");
}

/// `relay_round_100`: one relay round over 100 committed rows (claim,
/// publish_all, mark sent), timing the round only.
pub(crate) fn bench_relay_round<E: Event>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    pool: &PgPool,
    outbox: &Outbox,
    publisher: Arc<dyn Publisher>,
    envelope: fn(usize) -> Envelope<E>,
) {
    group.bench_function("relay_round_100", |b| {
        let relay =
            OutboxRelay::new(outbox, pool.clone(), Arc::clone(&publisher)).batch_size(BATCH as u32);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    enqueue(pool, outbox, BATCH, envelope).await;
                    let started = Instant::now();
                    let report = relay.publish_pending().await.expect("relay round");
                    total += started.elapsed();
                    assert_eq!(report.published, BATCH);
                }
                total
            })
        });
    });
}

/// Commit returns → the consumer receives (its arrival on `arrivals`), for
/// `events` events one at a time, with a relay woken by `NOTIFY` only; the
/// first 20 warm up and are not counted.
pub(crate) async fn commit_to_delivery<E: Event>(
    pool: &PgPool,
    outbox: &Outbox,
    publisher: Arc<dyn Publisher>,
    arrivals: &mut UnboundedReceiver<Instant>,
    events: usize,
    envelope: fn(usize) -> Envelope<E>,
) -> Vec<Duration> {
    let relay = OutboxRelay::new(outbox, pool.clone(), publisher)
        .poll_interval(Duration::from_secs(3600))
        .start()
        .await
        .expect("relay");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    for n in 0..events {
        let mut tx = pool.begin().await.expect("begin");
        outbox
            .enqueue(&mut tx, &envelope(n))
            .await
            .expect("enqueue");
        let committed = Instant::now();
        tx.commit().await.expect("commit");
        let delivered = arrivals.recv().await.expect("delivery");
        if n >= 20 {
            latencies.push(delivered.saturating_duration_since(committed));
        }
    }
    relay.shutdown().await.expect("shutdown");
    latencies
}

/// Prints the p50 and p99 of `latencies`, measured over `setup`.
#[allow(clippy::print_stdout)]
pub(crate) fn print_latency(setup: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "outbox commit->delivery latency over {} events ({setup}): p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}
