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
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{Envelope, EventContext, EventPublisher, Router, memory::MemoryBus};
use tokio::runtime::Runtime;

const EVENTS: u64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRenamed {
    user_id: String,
    display_name: String,
}
tessera_event_bus::event!(UserRenamed => "com.example.user.renamed.v1", subject = user_id);

/// Counts handled events and wakes the publisher once a round is handled.
struct Progress {
    handled: AtomicU64,
    target: AtomicU64,
    done: tokio::sync::Notify,
}

impl Progress {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            handled: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            done: tokio::sync::Notify::new(),
        })
    }

    /// Called by the consumer for every event it handled.
    fn handled_one(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
    }
}

/// Times `iters` rounds of [`EVENTS`] events, each round until the consumer
/// handled all of them. The publisher is a task on the runtime, as a
/// service's request handler would be, not the thread blocking on the
/// runtime.
fn rounds<P, F>(rt: &Runtime, progress: &Arc<Progress>, iters: u64, publish: P) -> Duration
where
    P: Fn(UserRenamed) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let progress = Arc::clone(progress);
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                let base = progress.handled.load(Ordering::Relaxed);
                progress.target.store(base + EVENTS, Ordering::Relaxed);
                let notified = progress.done.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                for n in 0..EVENTS {
                    publish(UserRenamed {
                        user_id: format!("u-{}", n % 100),
                        display_name: "Ada".into(),
                    })
                    .await;
                }
                notified.await;
            }
            start.elapsed()
        })
        .await
        .expect("publisher task")
    })
}

fn publish_to_handled(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("in_memory");
    group.throughput(Throughput::Elements(EVENTS));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));

    let bus = MemoryBus::new();
    let progress = Progress::new();
    let handler_progress = Arc::clone(&progress);
    let router = rt.block_on(async {
        Router::new(Arc::new(bus.subscriber()), "bench")
            .handle(move |_env: Envelope<UserRenamed>, _ctx: EventContext| {
                let progress = Arc::clone(&handler_progress);
                async move {
                    progress.handled_one();
                    Ok(())
                }
            })
            .start()
            .await
            .expect("router")
    });
    let events = Arc::new(EventPublisher::new(Arc::new(bus.publisher()), "/bench"));
    group.bench_function("publish_to_handled", |b| {
        b.iter_custom(|iters| {
            let events = Arc::clone(&events);
            rounds(&rt, &progress, iters, move |event| {
                let events = Arc::clone(&events);
                async move {
                    events.publish(event).await.expect("publish");
                }
            })
        });
    });
    rt.block_on(router.shutdown()).expect("shutdown");

    raw_mpsc_json(&rt, &mut group);
    group.finish();
}

/// The same events without the bus: encoded to JSON, sent over a bounded
/// tokio channel as big as the bus's default queue, decoded by one consumer
/// task that counts them. No ids, envelope, acks, middleware or tracing: the
/// floor the bus's overhead is measured against.
fn raw_mpsc_json(rt: &Runtime, group: &mut BenchmarkGroup<'_, WallTime>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(10_000);
    let progress = Progress::new();
    let consumer_progress = Arc::clone(&progress);
    let consumer = rt.spawn(async move {
        while let Some(bytes) = rx.recv().await {
            let event: UserRenamed = serde_json::from_slice(&bytes).expect("decode");
            std::hint::black_box(event);
            consumer_progress.handled_one();
        }
    });
    group.bench_function("raw_mpsc_json", |b| {
        b.iter_custom(|iters| {
            let tx = tx.clone();
            rounds(rt, &progress, iters, move |event| {
                let tx = tx.clone();
                async move {
                    let bytes = serde_json::to_vec(&event).expect("encode");
                    tx.send(bytes).await.expect("send");
                }
            })
        });
    });
    drop(tx);
    rt.block_on(consumer).expect("consumer");
}

criterion_group!(benches, publish_to_handled);
criterion_main!(benches);
