//! The in-memory replica: version gate, tombstones, minimisation, hooks,
//! router integration and bad input.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::{at, histories_and_shuffle, user_ids};
use proptest::prelude::*;
use tessera_event_bus::{
    Attributes, Envelope, EventPublisher, Publisher, RawEvent, Router, memory::MemoryBus,
    router::RetryPolicy,
};
use tessera_user_sync::{
    ApplyError, Fields, InvalidEvent, UserReplica,
    events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered},
    store::{DeletedUser, MemoryStore, NoTransaction, Outcome, ReplicatedUser, UserState},
};

fn counting_replica(
    deleted: &Arc<AtomicUsize>,
    updated: &Arc<AtomicUsize>,
) -> UserReplica<MemoryStore> {
    let (d, u) = (Arc::clone(deleted), Arc::clone(updated));
    UserReplica::builder("test", MemoryStore::new())
        .on_deleted(move |_: &mut NoTransaction, _: &DeletedUser| {
            d.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .on_updated(move |_: &mut NoTransaction, _: &ReplicatedUser| {
            u.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .build()
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_permutation_with_duplicates_converges_to_the_in_order_state(
        (in_order, shuffled) in histories_and_shuffle()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let deleted = Arc::new(AtomicUsize::new(0));
            let updated = Arc::new(AtomicUsize::new(0));
            let expected = UserReplica::builder("in-order", MemoryStore::new()).keep(Fields::ALL).build();
            let actual = counting_replica(&deleted, &updated);
            for e in &in_order {
                expected.apply(e.clone()).await.unwrap();
            }
            for e in &shuffled {
                actual.apply(e.clone()).await.unwrap();
            }
            let deletions = in_order.iter().filter(|e| matches!(e, UserEvent::Deleted(_))).count();
            for id in user_ids(&in_order) {
                let want = expected.state(&id).await.unwrap().map(|s| match s {
                    UserState::Live(u) => UserState::Live(u.minimised(Fields::DISPLAY_NAME)),
                    other => other,
                });
                prop_assert_eq!(actual.state(&id).await.unwrap(), want);
            }
            prop_assert_eq!(deleted.load(Ordering::SeqCst), deletions, "on_deleted once per deleted user");
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn delete_then_late_update_stays_deleted_and_hooks_ran_once() {
    let deleted = Arc::new(AtomicUsize::new(0));
    let updated = Arc::new(AtomicUsize::new(0));
    let replica = counting_replica(&deleted, &updated);
    assert_eq!(
        replica
            .apply(UserRegistered::new("u", 1, "A").occurred_at(at(1)))
            .await
            .unwrap(),
        Outcome::Inserted
    );
    assert_eq!(
        replica
            .apply(UserDeleted::new("u", 3).occurred_at(at(3)))
            .await
            .unwrap(),
        Outcome::Deleted
    );
    // The update that was overtaken by the deletion, then duplicates.
    assert_eq!(
        replica
            .apply(UserProfileUpdated::new("u", 2, "B"))
            .await
            .unwrap(),
        Outcome::Ignored
    );
    assert_eq!(
        replica.apply(UserDeleted::new("u", 3)).await.unwrap(),
        Outcome::Ignored
    );
    assert_eq!(
        replica
            .apply(UserRegistered::new("u", 9, "C"))
            .await
            .unwrap(),
        Outcome::Ignored
    );
    assert_eq!(replica.get("u").await.unwrap(), None);
    assert_eq!(
        replica.state("u").await.unwrap(),
        Some(UserState::Deleted(DeletedUser::new("u", 3, at(3))))
    );
    assert_eq!(deleted.load(Ordering::SeqCst), 1);
    assert_eq!(updated.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_deletion_of_an_unknown_user_leaves_a_tombstone_and_runs_the_hook() {
    let deleted = Arc::new(AtomicUsize::new(0));
    let replica = counting_replica(&deleted, &Arc::new(AtomicUsize::new(0)));
    replica.apply(UserDeleted::new("ghost", 2)).await.unwrap();
    replica
        .apply(UserRegistered::new("ghost", 1, "Boo"))
        .await
        .unwrap();
    assert_eq!(replica.get("ghost").await.unwrap(), None);
    assert_eq!(deleted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_and_duplicate_versions_are_no_ops() {
    let replica = UserReplica::in_memory("t");
    replica
        .apply(UserRegistered::new("u", 1, "A"))
        .await
        .unwrap();
    assert_eq!(
        replica
            .apply(UserProfileUpdated::new("u", 3, "C"))
            .await
            .unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        replica
            .apply(UserProfileUpdated::new("u", 3, "C again"))
            .await
            .unwrap(),
        Outcome::Ignored
    );
    assert_eq!(
        replica
            .apply(UserProfileUpdated::new("u", 2, "B"))
            .await
            .unwrap(),
        Outcome::Ignored
    );
    let u = replica.get("u").await.unwrap().unwrap();
    assert_eq!((u.version, u.display_name.as_deref()), (3, Some("C")));
}

#[tokio::test]
async fn only_declared_fields_are_kept() {
    let full = UserRegistered::new("u", 1, "Ada")
        .username("ada")
        .email("ada@example.com")
        .avatar_url("https://example.com/a.png");
    let names = UserReplica::in_memory("names");
    names.apply(full.clone()).await.unwrap();
    let u = names.get("u").await.unwrap().unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Ada"));
    assert_eq!((u.username, u.email, u.avatar_url), (None, None, None));

    let ids = UserReplica::builder("ids", MemoryStore::new())
        .keep(Fields::NONE)
        .build();
    ids.apply(full.clone()).await.unwrap();
    let u = ids.get("u").await.unwrap().unwrap();
    assert_eq!((u.version, u.display_name), (1, None));

    let avatars = UserReplica::builder("a", MemoryStore::new())
        .keep(Fields::DISPLAY_NAME | Fields::AVATAR_URL)
        .build();
    avatars.apply(full).await.unwrap();
    let u = avatars.get("u").await.unwrap().unwrap();
    assert_eq!(u.avatar_url.as_deref(), Some("https://example.com/a.png"));
    assert_eq!(u.email, None);
}

#[tokio::test]
async fn get_many_returns_live_users_only() {
    let replica = UserReplica::in_memory("t");
    for i in 0..10 {
        replica
            .apply(UserRegistered::new(format!("u{i}"), 1, format!("n{i}")))
            .await
            .unwrap();
    }
    replica.apply(UserDeleted::new("u3", 2)).await.unwrap();
    let found = replica
        .get_many(["u1", "u3", "u9", "nobody"])
        .await
        .unwrap();
    let mut keys: Vec<_> = found.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["u1", "u9"]);
    assert_eq!(found["u9"].display_name.as_deref(), Some("n9"));
    assert!(
        replica
            .get_many(Vec::<String>::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn invalid_events_are_errors_and_change_nothing() {
    let replica = UserReplica::in_memory("t");
    replica
        .apply(UserRegistered::new("u", 1, "A"))
        .await
        .unwrap();
    let err = replica
        .apply(UserProfileUpdated::new("u", 0, "zero"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ApplyError::Invalid(InvalidEvent::VersionOutOfRange(0))
    ));
    assert!(!err.is_transient());
    let err = replica
        .apply(UserProfileUpdated::new("u", u64::MAX, "max"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid user event: version {} is out of range (1 to 2^53 - 1)",
            u64::MAX
        )
    );
    let err = replica.apply(UserDeleted::new("  ", 2)).await.unwrap_err();
    assert!(matches!(
        err,
        ApplyError::Invalid(InvalidEvent::EmptyUserId)
    ));
    // A batch with one invalid event applies nothing.
    let err = replica
        .apply_all([
            UserProfileUpdated::new("u", 2, "B").into(),
            UserDeleted::new("", 3).into(),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)));
    assert_eq!(
        replica
            .get("u")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("A")
    );
}

#[tokio::test]
async fn apply_all_reports_what_happened() {
    let replica = UserReplica::in_memory("t");
    let report = replica
        .apply_all([
            UserRegistered::new("a", 1, "A").into(),
            UserProfileUpdated::new("a", 2, "A2").into(),
            UserProfileUpdated::new("a", 2, "A2").into(),
            UserRegistered::new("b", 1, "B").into(),
            UserDeleted::new("b", 2).into(),
        ])
        .await
        .unwrap();
    assert_eq!(
        (
            report.inserted,
            report.updated,
            report.deleted,
            report.ignored
        ),
        (2, 1, 1, 1)
    );
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

#[tokio::test]
async fn old_tombstones_are_pruned_and_newer_ones_kept() {
    let replica = UserReplica::builder("prune", MemoryStore::new()).build();
    common::check_prune_tombstones(&replica).await;
}
