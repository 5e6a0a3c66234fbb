//! Replica benchmarks: apply throughput (in memory and PostgreSQL with
//! batching), `get_many` of 100 ids from PostgreSQL, and the memory of an
//! in-memory replica of 1M users (id + display name).
//!
//! Run with `cargo bench -p tessera-user-sync --all-features --bench replica`.
//! The PostgreSQL benchmarks need DATABASE_URL (default
//! `postgres://postgres@127.0.0.1:5432/test`) and are skipped with a message
//! when it is unreachable.

// Benchmarks report on stderr, next to criterion's own output.
#![allow(clippy::print_stderr)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput};
use tessera_user_sync::{
    UserReplica,
    events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered},
    store::MemoryStore,
};

/// `users` users, each registered then updated `updates` times, interleaved
/// as a broker would deliver them; every 10th user deleted at the end.
fn events(users: usize, updates: u64) -> Vec<UserEvent> {
    let mut out = Vec::with_capacity(users * (updates as usize + 2));
    for i in 0..users {
        out.push(UserRegistered::new(format!("user-{i:08}"), 1, format!("User {i}")).into());
    }
    for v in 2..=updates + 1 {
        for i in 0..users {
            out.push(
                UserProfileUpdated::new(format!("user-{i:08}"), v, format!("User {i} v{v}")).into(),
            );
        }
    }
    for i in (0..users).step_by(10) {
        out.push(UserDeleted::new(format!("user-{i:08}"), updates + 2).into());
    }
    out
}

fn memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let batch = events(10_000, 4);
    let mut group = c.benchmark_group("memory");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("apply_one_by_one", |b| {
        b.to_async(&rt).iter_batched(
            || (UserReplica::in_memory("bench"), batch.clone()),
            |(replica, events)| async move {
                for e in events {
                    black_box(replica.apply(e).await.unwrap());
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("apply_all", |b| {
        b.to_async(&rt).iter_batched(
            || (UserReplica::in_memory("bench"), batch.clone()),
            |(replica, events)| async move { black_box(replica.apply_all(events).await.unwrap()) },
            BatchSize::LargeInput,
        );
    });
    let warm = UserReplica::in_memory("bench");
    rt.block_on(warm.apply_all(batch.clone())).unwrap();
    group.throughput(Throughput::Elements(100));
    let ids: Vec<String> = (0..100).map(|i| format!("user-{:08}", i * 97)).collect();
    group.bench_function("get_many_100", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(warm.get_many(ids.iter().cloned()).await.unwrap()) });
    });
    group.finish();
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    use std::time::Duration;

    use sqlx::PgPool;
    use tessera_user_sync::store::postgres::{PgReplicaStore, TableName};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pool = match rt.block_on(async {
        // No ping before each acquire: a replica's read path wants one round trip per query.
        sqlx::postgres::PgPoolOptions::new()
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&url)
            .await
    }) {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("skipping the PostgreSQL benchmarks: {url} unreachable ({error})");
            return;
        }
    };
    let schema = "us_bench";
    let reset = |pool: &PgPool| {
        let pool = pool.clone();
        rt.block_on(async move {
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
            let store = PgReplicaStore::new(pool, TableName::new(schema, "replica").unwrap());
            store.migrate().await.unwrap();
            store
        })
    };

    let mut group = c.benchmark_group("postgres");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    // Batches of 500 events, each batch one transaction; a fresh range of users per iteration.
    let per_batch = 500usize;
    group.throughput(Throughput::Elements(per_batch as u64));
    let store = reset(&pool);
    let replica = UserReplica::builder("bench", store).build();
    let mut round = 0u64;
    group.bench_function("apply_all_batch_500", |b| {
        b.to_async(&rt).iter_batched(
            || {
                round += 1;
                let base = round * 100;
                // 100 users x (registered + 3 updates) + 100 duplicates = 500 events.
                let mut events: Vec<UserEvent> = Vec::with_capacity(per_batch);
                for v in 1..=4u64 {
                    for i in 0..100 {
                        let id = format!("user-{:08}", base + i);
                        events.push(if v == 1 {
                            UserRegistered::new(id, 1, format!("User {i}")).into()
                        } else {
                            UserProfileUpdated::new(id, v, format!("User {i} v{v}")).into()
                        });
                    }
                }
                events.extend(events[..100].to_vec());
                events
            },
            |events| {
                let replica = replica.clone();
                async move { black_box(replica.apply_all(events).await.unwrap()) }
            },
            BatchSize::SmallInput,
        );
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("apply_one_event_per_transaction", |b| {
        let mut v = 1u64;
        b.to_async(&rt).iter(|| {
            v += 1;
            let replica = replica.clone();
            async move {
                black_box(
                    replica
                        .apply(UserProfileUpdated::new("hot-user", v, "Hot"))
                        .await
                        .unwrap(),
                )
            }
        });
    });

    // The consumer path: MemoryBus -> Router -> replica with batching, 5,000 events per iteration.
    {
        use std::sync::Arc;

        use tessera_event_bus::{EventPublisher, Router, memory::MemoryBus};
        let store = reset(&pool);
        let replica = UserReplica::builder("bench", store)
            .batch(256, Duration::from_millis(2))
            .build();
        let bus = MemoryBus::new();
        let router = rt
            .block_on(
                replica
                    .route(
                        Router::new(Arc::new(bus.subscriber()), "bench")
                            .concurrency(512)
                            .prefetch(1024),
                    )
                    .start(),
            )
            .unwrap();
        let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
        let mut round = 0u64;
        group.throughput(Throughput::Elements(5_000));
        group.bench_function("router_batched_5000_events", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (bus, events) = (bus.clone(), events.clone());
                round += 1;
                let base = round * 1_000_000;
                async move {
                    let started = std::time::Instant::now();
                    for it in 0..iters {
                        for v in 1..=5u64 {
                            for i in 0..1_000 {
                                let id = format!("user-{:012}", base + it * 1_000 + i);
                                let sent = if v == 1 {
                                    events.publish(UserRegistered::new(id, 1, "User")).await
                                } else {
                                    events.publish(UserProfileUpdated::new(id, v, "User")).await
                                };
                                sent.unwrap();
                            }
                        }
                        while bus.queued("bench") > 0 || bus.in_flight("bench") > 0 {
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                    started.elapsed()
                }
            });
        });
        rt.block_on(router.shutdown()).unwrap();
    }

    // get_many of 100 ids out of 100,000 users.
    let store = reset(&pool);
    let replica = UserReplica::builder("bench", store).build();
    rt.block_on(async {
        for chunk in 0..100 {
            let events = (0..1000).map(|i| {
                let n = chunk * 1000 + i;
                UserEvent::from(UserRegistered::new(
                    format!("user-{n:08}"),
                    1,
                    format!("User {n}"),
                ))
            });
            replica.apply_all(events).await.unwrap();
        }
        // Steady state: the bulk load vacuumed and analysed now, so autovacuum
        // does not start on it in the middle of the measurement.
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) \"{schema}\".replica"))
            .execute(&pool)
            .await
            .unwrap();
    });
    let ids: Vec<String> = (0..100).map(|i| format!("user-{:08}", i * 997)).collect();
    group.throughput(Throughput::Elements(100));
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("get_many_100_of_100k", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(replica.get_many(ids.iter().cloned()).await.unwrap()) });
    });
    // The same from a current-thread runtime (no hand-off between worker threads).
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local_pool = local.block_on(
        sqlx::postgres::PgPoolOptions::new()
            .test_before_acquire(false)
            .connect(&url),
    );
    if let Ok(local_pool) = local_pool {
        let store = PgReplicaStore::new(local_pool, TableName::new(schema, "replica").unwrap());
        let local_replica = UserReplica::builder("bench", store).build();
        group.bench_function("get_many_100_of_100k_current_thread", |b| {
            b.to_async(&local).iter(|| async {
                black_box(local_replica.get_many(ids.iter().cloned()).await.unwrap())
            });
        });
    }
    group.finish();
    rt.block_on(async {
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await
            .unwrap();
    });
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("skipping the PostgreSQL benchmarks: build with --features postgres");
}

/// Resident set size in bytes, from /proc (Linux); `None` elsewhere.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The memory of an in-memory replica of 1M users with id and display name,
/// as the growth of the resident set (events are built and dropped in chunks).
fn memory_footprint() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let replica = UserReplica::builder("footprint", MemoryStore::new()).build();
    let before = rss();
    rt.block_on(async {
        for chunk in 0..100 {
            let events: Vec<UserEvent> = (0..10_000)
                .map(|i| {
                    let n = chunk * 10_000 + i;
                    // A UUID-sized id (36 bytes) and a typical display name.
                    UserRegistered::new(
                        format!("{n:08x}-0000-4000-8000-{n:012x}"),
                        1,
                        format!("Display Name {n}"),
                    )
                    .email("dropped@example.com")
                    .into()
                })
                .collect();
            replica.apply_all(events).await.unwrap();
        }
    });
    let after = rss();
    assert_eq!(replica.store().len(), 1_000_000);
    match (before, after) {
        (Some(b), Some(a)) => eprintln!(
            "memory/footprint_1m_users: resident set grew by {:.1} MiB ({} bytes per user)",
            (a.saturating_sub(b)) as f64 / (1024.0 * 1024.0),
            a.saturating_sub(b) / 1_000_000
        ),
        _ => eprintln!("memory/footprint_1m_users: /proc/self/statm unavailable"),
    }
    drop(replica);
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    // Only when benchmarking, not when `cargo test --benches` runs the binary.
    if std::env::args().any(|a| a == "--bench") {
        memory_footprint();
    }
    memory(&mut criterion);
    postgres(&mut criterion);
    criterion.final_summary();
}
