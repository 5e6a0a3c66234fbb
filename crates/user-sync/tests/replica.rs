//! The in-memory replica: the store contract (the conformance kit), then
//! what is the replica's own: router integration, retries, bad input on the
//! wire, metrics.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::histories_and_shuffle;
use proptest::prelude::*;
use tessera_event_bus::{
    Attributes, Envelope, EventPublisher, Publisher, RawEvent, Router, memory::MemoryBus,
    router::RetryPolicy,
};
use tessera_user_sync::{
    UserReplica,
    events::{UserDeleted, UserRegistered},
    store::{DeletedUser, MemoryStore, NoTransaction},
    testkit::{MemoryTestStore, cases},
};

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

// The store contract, on the in-memory store.
mod conformance {
    tessera_user_sync::replica_store_tests!(tessera_user_sync::testkit::MemoryTestStore::new());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_permutation_with_duplicates_converges_to_the_in_order_state(
        (in_order, shuffled) in histories_and_shuffle()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(cases::converges_like_in_order(
            &MemoryTestStore::new(),
            "converges",
            &in_order,
            &shuffled,
            &[],
        ));
    }
}

fn raw(ty: &str, subject: Option<&str>, data: &'static [u8]) -> RawEvent {
    let mut attrs = Attributes::new(Attributes::new_id(), "/user-service", ty);
    attrs.subject = subject.map(str::to_owned);
    attrs.datacontenttype = Some("application/json".to_owned());
    RawEvent::new(attrs, Bytes::from_static(data))
}

#[tokio::test]
async fn the_router_dead_letters_bad_events_and_keeps_applying_good_ones() {
    let bus = MemoryBus::new();
    let replica = UserReplica::in_memory("comments");
    let router = replica
        .route(Router::new(Arc::new(bus.subscriber()), "comments").retry(RetryPolicy::none()))
        .start()
        .await
        .unwrap();
    let publisher = bus.publisher();
    let bad = [
        raw("tessera.user.registered.v1", Some("u1"), b"not json"),
        raw("tessera.user.registered.v1", Some("u1"), br#"{"user_id":"u1"}"#),
        raw("tessera.user.profile_updated.v1", Some("u1"), br#"{"user_id":"u1","version":"2","display_name":"x","occurred_at":"2026-01-01T00:00:00Z"}"#),
        raw("tessera.user.deleted.v1", Some("u1"), br#"{"user_id":"u1","version":0,"occurred_at":"2026-01-01T00:00:00Z"}"#),
        // Subject and data disagree: which user is it about?
        raw("tessera.user.deleted.v1", Some("someone-else"), br#"{"user_id":"u1","version":9,"occurred_at":"2026-01-01T00:00:00Z"}"#),
    ];
    let n_bad = bad.len();
    for event in bad {
        publisher.publish(event).await.unwrap();
    }
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
    events
        .publish(UserRegistered::new("u1", 1, "Ada"))
        .await
        .unwrap();
    // Without a subject the data's user id is used.
    publisher
        .publish(raw("tessera.user.profile_updated.v1", None, br#"{"user_id":"u1","version":2,"display_name":"Ada L","occurred_at":"2026-01-01T00:00:00Z","extra":{"x":1}}"#))
        .await
        .unwrap();

    wait_until("dead letters", || {
        bus.dead_letters("comments").len() == n_bad
    })
    .await;
    for _ in 0..500 {
        if replica
            .get("u1")
            .await
            .unwrap()
            .is_some_and(|u| u.version == 2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let u = replica.get("u1").await.unwrap().unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Ada L"));
    let reasons: Vec<String> = bus
        .dead_letters("comments")
        .into_iter()
        .map(|d| d.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("undecodable")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("version 0 is out of range")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("subject `someone-else` does not match the user id `u1`")),
        "{reasons:?}"
    );
    router.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_hook_is_retried_by_the_router_and_runs_to_completion_once() {
    let bus = MemoryBus::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    let replica = UserReplica::builder("comments", MemoryStore::new())
        .on_deleted(move |_: &mut NoTransaction, _: &DeletedUser| {
            let n = a.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < 2 {
                    Err("comments table locked".into())
                } else {
                    Ok(())
                }
            })
        })
        .build();
    let retry = RetryPolicy::exponential()
        .max_attempts(5)
        .min_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5));
    let router = replica
        .route(Router::new(Arc::new(bus.subscriber()), "comments").retry(retry))
        .start()
        .await
        .unwrap();
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
    events
        .publish(UserRegistered::new("u", 1, "A"))
        .await
        .unwrap();
    events.publish(UserDeleted::new("u", 2)).await.unwrap();
    events.publish(UserDeleted::new("u", 2)).await.unwrap();
    wait_until("third hook attempt", || {
        attempts.load(Ordering::SeqCst) >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "two failures, one success, the duplicate ignored"
    );
    assert!(replica.get("u").await.unwrap().is_none());
    assert!(bus.dead_letters("comments").is_empty());
    router.shutdown().await.unwrap();
}

#[test]
fn lag_is_reported_as_a_metric() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let replica = UserReplica::in_memory("lagging");
    assert_eq!(replica.lag(), None);
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let ten_s_ago = time::OffsetDateTime::now_utc() - time::Duration::seconds(10);
            replica
                .apply(UserRegistered::new("u", 1, "A").occurred_at(ten_s_ago))
                .await
                .unwrap();
            replica
                .apply(UserRegistered::new("u", 1, "A").occurred_at(ten_s_ago))
                .await
                .unwrap();
            replica.apply(UserDeleted::new("", 1)).await.unwrap_err();
        });
    });
    let lag = replica.lag().unwrap();
    assert!(
        lag >= Duration::from_secs(10) && lag < Duration::from_secs(60),
        "{lag:?}"
    );
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, outcome: Option<&str>| {
        snapshot
            .iter()
            .find(|(k, _, _, _)| {
                let key = k.key();
                key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "replica" && l.value() == "lagging")
                    && outcome.is_none_or(|o| {
                        key.labels().any(|l| l.key() == "outcome" && l.value() == o)
                    })
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            })
    };
    assert_eq!(
        find("tessera_user_replica_events_total", Some("inserted")),
        Some(1.0)
    );
    assert_eq!(
        find("tessera_user_replica_events_total", Some("ignored")),
        Some(1.0)
    );
    assert_eq!(
        find("tessera_user_replica_events_total", Some("invalid")),
        Some(1.0)
    );
    let lag_gauge = find("tessera_user_replica_lag_seconds", None).expect("a lag gauge");
    assert!(lag_gauge >= 10.0, "{lag_gauge}");
}

#[tokio::test]
async fn the_service_can_be_called_directly() {
    use tessera_event_bus::{EventContext, router::EventRequest};
    use tower::ServiceExt;
    let replica = UserReplica::in_memory("t");
    let env = Envelope::new("/users", UserRegistered::new("u", 1, "A"));
    replica
        .service()
        .oneshot(EventRequest::new(env, EventContext::detached("t")))
        .await
        .unwrap();
    assert!(replica.get("u").await.unwrap().is_some());
}
