//! In-memory throughput: events published through [`EventPublisher`] until a
//! [`Router`] handled them all (`publish_to_handled`), beside the floor of
//! the same work without the bus (`raw_mpsc_json`: JSON over a bounded
//! tokio channel to one consumer task). Run with:
//!
//! ```sh
//! cargo bench -p tessera-event-bus --bench in_memory
//! ```
#![allow(missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{Envelope, EventContext, EventPublisher, Router, memory::MemoryBus};

const EVENTS: u64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRenamed {
    user_id: String,
    display_name: String,
}
tessera_event_bus::event!(UserRenamed => "com.example.user.renamed.v1", subject = user_id);

fn publish_to_handled(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bus = MemoryBus::new();
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let (h, d, t) = (Arc::clone(&handled), Arc::clone(&done), Arc::clone(&target));
    let router = rt.block_on(async {
        Router::new(Arc::new(bus.subscriber()), "bench")
            .handle(move |_env: Envelope<UserRenamed>, _ctx: EventContext| {
                let (h, d, t) = (Arc::clone(&h), Arc::clone(&d), Arc::clone(&t));
                async move {
                    if h.fetch_add(1, Ordering::Relaxed) + 1 == t.load(Ordering::Relaxed) {
                        d.notify_one();
                    }
                    Ok(())
                }
            })
            .start()
            .await
            .expect("router")
    });
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/bench");

    let mut group = c.benchmark_group("in_memory");
    group.throughput(Throughput::Elements(EVENTS));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let events = Arc::new(events);
    group.bench_function("publish_to_handled", |b| {
        b.iter_custom(|iters| {
            let (events, handled, target, done) = (
                Arc::clone(&events),
                Arc::clone(&handled),
                Arc::clone(&target),
                Arc::clone(&done),
            );
            // The publisher is a task on the runtime, as a service's request
            // handler would be, not the thread blocking on the runtime.
            rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let base = handled.load(Ordering::Relaxed);
                        target.store(base + EVENTS, Ordering::Relaxed);
                        let notified = done.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        for n in 0..EVENTS {
                            events
                                .publish(UserRenamed {
                                    user_id: format!("u-{}", n % 100),
                                    display_name: "Ada".into(),
                                })
                                .await
                                .expect("publish");
                        }
                        notified.await;
                    }
                    start.elapsed()
                })
                .await
                .expect("publisher task")
            })
        });
    });
    raw_mpsc_json(&rt, &mut group);
    group.finish();
    rt.block_on(router.shutdown()).expect("shutdown");
}

/// The same events without the bus: encoded to JSON, sent over a bounded
/// tokio channel as big as the bus's default queue, decoded by one consumer
/// task that counts them. No ids, envelope, acks, middleware or tracing: the
/// floor the bus's overhead is measured against.
fn raw_mpsc_json(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(10_000);
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let (h, d, t) = (Arc::clone(&handled), Arc::clone(&done), Arc::clone(&target));
    let consumer = rt.spawn(async move {
        while let Some(bytes) = rx.recv().await {
            let event: UserRenamed = serde_json::from_slice(&bytes).expect("decode");
            std::hint::black_box(event);
            if h.fetch_add(1, Ordering::Relaxed) + 1 == t.load(Ordering::Relaxed) {
                d.notify_one();
            }
        }
    });
    group.bench_function("raw_mpsc_json", |b| {
        b.iter_custom(|iters| {
            let (tx, handled, target, done) = (
                tx.clone(),
                Arc::clone(&handled),
                Arc::clone(&target),
                Arc::clone(&done),
            );
            rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let base = handled.load(Ordering::Relaxed);
                        target.store(base + EVENTS, Ordering::Relaxed);
                        let notified = done.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        for n in 0..EVENTS {
                            let event = UserRenamed {
                                user_id: format!("u-{}", n % 100),
                                display_name: "Ada".into(),
                            };
                            let bytes = serde_json::to_vec(&event).expect("encode");
                            tx.send(bytes).await.expect("send");
                        }
                        notified.await;
                    }
                    start.elapsed()
                })
                .await
                .expect("publisher task")
            })
        });
    });
    drop(tx);
    rt.block_on(consumer).expect("consumer");
}

criterion_group!(benches, publish_to_handled);
criterion_main!(benches);
