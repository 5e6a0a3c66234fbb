//! The router and publisher record metrics through the `metrics` facade.
//!
//! One test in this binary: it installs the global recorder.

use std::{sync::Arc, time::Duration};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Envelope, EventContext, EventPublisher, HandlerError, RawEvent, Router, memory::MemoryBus,
    metrics as names, router::RetryPolicy,
};

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    ok: bool,
}
tessera_event_bus::event!(Job => "com.example.job.v1");

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// The sum of the counters (or histogram sample counts) matching name and labels.
fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(c) => *c,
            DebugValue::Histogram(h) => h.len() as u64,
            DebugValue::Gauge(_) => 0,
        })
        .sum()
}

#[tokio::test]
async fn publishing_and_handling_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");

    let bus = MemoryBus::new();
    let router = Router::new(Arc::new(bus.subscriber()), "workers")
        .retry(
            RetryPolicy::exponential()
                .max_attempts(2)
                .min_delay(Duration::from_millis(1)),
        )
        .handle(|env: Envelope<Job>, _: EventContext| async move {
            if env.data().ok {
                Ok(())
            } else {
                Err(HandlerError::transient("flaky"))
            }
        })
        .start()
        .await
        .unwrap();
    // Bind the group to a type nobody handles, so one delivery is unhandled.
    {
        use tessera_event_bus::{SubscribeOptions, Subscriber};
        let mut s = bus
            .subscriber()
            .subscribe(SubscribeOptions::new("workers").event_type("com.example.other.v1"))
            .await
            .unwrap();
        s.close().await.unwrap();
    }
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/jobs");
    events.publish(Job { ok: true }).await.unwrap();
    events.publish(Job { ok: false }).await.unwrap();
    let mut undecodable = events
        .envelope(Job { ok: true })
        .encode(&tessera_event_bus::JsonCodec)
        .unwrap();
    undecodable.data = bytes::Bytes::from_static(b"nope");
    tessera_event_bus::Publisher::publish(&**events.inner(), undecodable)
        .await
        .unwrap();
    let other = RawEvent::new(
        tessera_event_bus::Attributes::new("o1", "/x", "com.example.other.v1"),
        bytes::Bytes::new(),
    );
    tessera_event_bus::Publisher::publish(&**events.inner(), other)
        .await
        .unwrap();

    tokio::time::timeout(Duration::from_secs(5), async {
        while bus.dead_letters("workers").len() < 2
            || bus.queued("workers") + bus.in_flight("workers") > 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("all events processed");
    router.shutdown().await.unwrap();

    // Taken once: a snapshot drains what it reads.
    let snapshot: Snapshot = snapshotter.snapshot().into_vec();
    let job = [("type", "com.example.job.v1")];
    let workers = [("type", "com.example.job.v1"), ("group", "workers")];
    assert_eq!(
        counter(&snapshot, names::PUBLISHED, &job),
        2,
        "raw publishes are not counted"
    );
    assert_eq!(counter(&snapshot, names::DELIVERED, &workers), 3);
    assert_eq!(counter(&snapshot, names::HANDLED, &workers), 1);
    assert_eq!(counter(&snapshot, names::RETRIED, &workers), 1);
    assert_eq!(
        counter(&snapshot, names::DEAD_LETTERED, &[("reason", "transient")]),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            names::DEAD_LETTERED,
            &[("reason", "undecodable")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snapshot,
            names::UNHANDLED,
            &[("type", "com.example.other.v1")]
        ),
        1
    );
    assert_eq!(counter(&snapshot, names::HANDLER_DURATION, &workers), 3);
}
