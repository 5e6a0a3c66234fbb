//! Backfill and reconciliation: convergence under live traffic, the HTTP
//! source, and every way a snapshot endpoint can fail.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tessera_event_bus::{EventPublisher, Router, memory::MemoryBus};
use tessera_user_sync::{
    BackfillError, SnapshotError, UserReplica,
    events::{UserDeleted, UserProfileUpdated, UserRegistered},
    snapshot::{Backfill, SnapshotPage, SnapshotSource, SnapshotUser, StaticSnapshot},
    store::UserState,
};

/// The user service's truth in the simulation: version, name, deleted.
type Truth = Arc<Mutex<HashMap<String, (u64, String, bool)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_with_concurrent_live_updates_converges_to_the_source() {
    let bus = MemoryBus::new();
    let source = StaticSnapshot::default();
    let truth: Truth = Arc::default();
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
    // Users that existed before the replica: their events are long gone.
    for i in 0..200 {
        let id = format!("u{i:03}");
        source.upsert(SnapshotUser::new(&id, 1, format!("{id} v1")));
        truth.lock().unwrap().insert(id, (1, String::new(), false));
    }
    // 1. bind first: the router declares the group's queue and starts applying.
    let replica = UserReplica::in_memory("comments");
    let router = replica
        .route(Router::new(Arc::new(bus.subscriber()), "comments"))
        .start()
        .await
        .unwrap();
    // The user service keeps changing users while the backfill pages.
    let writer = {
        let (source, truth, events) = (source.clone(), Arc::clone(&truth), events.clone());
        tokio::spawn(async move {
            for step in 0..600u64 {
                let i = (step * 7919) % 260; // some new users too
                let id = format!("u{i:03}");
                let current = truth.lock().unwrap().get(&id).cloned();
                match current {
                    Some((_, _, true)) => continue,
                    Some((v, _, false)) if step % 13 == 0 => {
                        source.remove(&id);
                        truth
                            .lock()
                            .unwrap()
                            .insert(id.clone(), (v + 1, String::new(), true));
                        events.publish(UserDeleted::new(&id, v + 1)).await.unwrap();
                    }
                    Some((v, _, false)) => {
                        let name = format!("{id} v{}", v + 1);
                        source.upsert(SnapshotUser::new(&id, v + 1, &name));
                        truth
                            .lock()
                            .unwrap()
                            .insert(id.clone(), (v + 1, name.clone(), false));
                        events
                            .publish(UserProfileUpdated::new(&id, v + 1, name))
                            .await
                            .unwrap();
                    }
                    None => {
                        let name = format!("{id} v1");
                        source.upsert(SnapshotUser::new(&id, 1, &name));
                        truth
                            .lock()
                            .unwrap()
                            .insert(id.clone(), (1, name.clone(), false));
                        events
                            .publish(UserRegistered::new(&id, 1, name))
                            .await
                            .unwrap();
                    }
                }
                if step % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // 2. page the snapshot while events flow.
    let report = Backfill::new(source.clone())
        .page_size(17)
        .run(&replica)
        .await
        .unwrap();
    assert!(report.pages >= 10, "{report:?}");
    writer.await.unwrap();
    // 3. drain.
    for _ in 0..500 {
        if bus.queued("comments") == 0 && bus.in_flight("comments") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    router.shutdown().await.unwrap();
    let truth = truth.lock().unwrap().clone();
    for (id, (version, _, deleted)) in truth {
        let state = replica.state(&id).await.unwrap();
        match state {
            Some(UserState::Live(u)) => {
                assert!(!deleted, "{id} should be deleted");
                assert_eq!(u.version, version, "{id}");
                assert_eq!(u.display_name.unwrap(), format!("{id} v{version}"));
            }
            Some(UserState::Deleted(d)) => {
                assert!(deleted, "{id} should be live");
                assert_eq!(d.version, version, "{id}");
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert!(bus.dead_letters("comments").is_empty());
}

#[tokio::test]
async fn reconciliation_spares_users_changed_during_its_run() {
    let source = StaticSnapshot::new(vec![
        SnapshotUser::new("a", 1, "A"),
        SnapshotUser::new("b", 1, "B"),
    ]);
    let replica = UserReplica::in_memory("t");
    Backfill::new(source.clone()).run(&replica).await.unwrap();
    // "c" registered live; the snapshot does not list it yet (a lagging read replica).
    replica
        .apply(UserRegistered::new("c", 1, "C"))
        .await
        .unwrap();
    source.remove("b");
    let report = Backfill::new(source.clone())
        .reconcile(&replica)
        .await
        .unwrap();
    assert_eq!(
        report.removed, 0,
        "within the default grace period nothing is removed"
    );
    let report = Backfill::new(source)
        .grace(Duration::ZERO)
        .reconcile(&replica)
        .await
        .unwrap();
    assert_eq!(report.removed, 2);
    assert!(replica.get("a").await.unwrap().is_some());
    assert!(replica.get("b").await.unwrap().is_none());
}

#[tokio::test]
async fn scheduled_reconciliation_removes_users_gone_from_the_source() {
    let source = StaticSnapshot::new(vec![
        SnapshotUser::new("a", 1, "A"),
        SnapshotUser::new("b", 1, "B"),
    ]);
    let replica = UserReplica::in_memory("t");
    Backfill::new(source.clone()).run(&replica).await.unwrap();
    source.remove("a");
    let handle = Backfill::new(source)
        .grace(Duration::ZERO)
        .spawn_reconciliation(replica.clone(), Duration::from_millis(20));
    for _ in 0..200 {
        if replica.get("a").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop();
    assert!(replica.get("a").await.unwrap().is_none());
    assert!(replica.get("b").await.unwrap().is_some());
}

/// A snapshot source that fails in the ways endpoints do.
#[derive(Debug)]
struct Flaky {
    inner: StaticSnapshot,
    fail_on_call: usize,
    calls: AtomicUsize,
    error: fn() -> SnapshotError,
}

#[async_trait::async_trait]
impl SnapshotSource for Flaky {
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.fail_on_call {
            return Err((self.error)());
        }
        self.inner.page(after, limit).await
    }
}

#[tokio::test]
async fn a_failing_page_stops_reconciliation_before_anything_is_deleted() {
    let users: Vec<_> = (0..10)
        .map(|i| SnapshotUser::new(format!("u{i}"), 1, "x"))
        .collect();
    let replica = UserReplica::in_memory("t");
    Backfill::new(StaticSnapshot::new(users.clone()))
        .run(&replica)
        .await
        .unwrap();
    let flaky = Flaky {
        inner: StaticSnapshot::new(users[..5].to_vec()),
        fail_on_call: 1,
        calls: AtomicUsize::new(0),
        error: || SnapshotError::Status { status: 503 },
    };
    let err = Backfill::new(flaky)
        .page_size(3)
        .grace(Duration::ZERO)
        .reconcile(&replica)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "snapshot endpoint answered http 503");
    assert_eq!(
        replica
            .get_many((0..10).map(|i| format!("u{i}")))
            .await
            .unwrap()
            .len(),
        10,
        "nothing deleted"
    );
}

#[derive(Debug)]
struct Stuck;

#[async_trait::async_trait]
impl SnapshotSource for Stuck {
    async fn page(&self, _: Option<&str>, _: u32) -> Result<SnapshotPage, SnapshotError> {
        Ok(SnapshotPage::new(
            vec![SnapshotUser::new("a", 1, "A")],
            Some("same".to_owned()),
        ))
    }
}

#[tokio::test]
async fn a_cursor_that_does_not_advance_is_an_error_not_a_loop() {
    let replica = UserReplica::in_memory("t");
    let err = Backfill::new(Stuck).run(&replica).await.unwrap_err();
    assert!(
        matches!(err, BackfillError::Snapshot(SnapshotError::CursorStuck(_))),
        "{err}"
    );
    assert_eq!(err.to_string(), "snapshot cursor `same` did not advance");
    assert!(
        replica.get("a").await.unwrap().is_some(),
        "what was read stays applied"
    );
}

/// Pages `a` → `b` → `c` → `a` ...: no page repeats the cursor it was given.
#[derive(Debug)]
struct Cycle;

#[async_trait::async_trait]
impl SnapshotSource for Cycle {
    async fn page(&self, after: Option<&str>, _: u32) -> Result<SnapshotPage, SnapshotError> {
        let next = match after {
            None => "a",
            Some("a") => "b",
            Some("b") => "c",
            Some(_) => "a",
        };
        Ok(SnapshotPage::new(
            vec![SnapshotUser::new(format!("u-{next}"), 1, "U")],
            Some(next.to_owned()),
        ))
    }
}

// Found by fuzzing (fuzz target `snapshot_page`): only a cursor equal to the
// one just sent was caught; a longer cycle made the backfill page forever.
#[tokio::test]
async fn a_cursor_cycle_is_an_error_not_a_loop() {
    let replica = UserReplica::in_memory("t");
    let backfill = Backfill::new(Cycle);
    let err = tokio::time::timeout(Duration::from_secs(10), backfill.run(&replica))
        .await
        .expect("the backfill ends")
        .unwrap_err();
    assert!(
        matches!(err, BackfillError::Snapshot(SnapshotError::CursorStuck(ref c)) if c == "a"),
        "{err}"
    );
    assert_eq!(replica.get("u-c").await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn invalid_snapshot_users_are_malformed_pages() {
    for (users, message) in [
        (
            vec![SnapshotUser::new("", 1, "A")],
            "malformed snapshot page: a user has an empty user_id",
        ),
        (
            vec![
                SnapshotUser::new("ok", 1, "A"),
                SnapshotUser::new("z", 0, "Z"),
            ],
            "malformed snapshot page: user `z` has version 0 (1 to 2^53 - 1)",
        ),
    ] {
        let replica = UserReplica::in_memory("t");
        let err = Backfill::new(StaticSnapshot::new(users))
            .run(&replica)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), message);
        assert!(
            replica.get("ok").await.unwrap().is_none(),
            "the bad page applied nothing"
        );
    }
}

#[cfg(feature = "http")]
mod http {
    use axum::{
        Json,
        extract::{Query, State},
        http::{HeaderMap, StatusCode},
        response::{IntoResponse, Response},
        routing::get,
    };
    use tessera_user_sync::snapshot::http::HttpSnapshotSource;

    use super::*;

    #[derive(Clone)]
    struct Endpoint {
        source: StaticSnapshot,
        mode: Arc<Mutex<&'static str>>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    #[derive(serde::Deserialize)]
    struct Params {
        after: Option<String>,
        limit: u32,
    }

    async fn users(
        State(e): State<Endpoint>,
        headers: HeaderMap,
        Query(p): Query<Params>,
    ) -> Response {
        e.requests
            .lock()
            .unwrap()
            .push(format!("after={:?} limit={}", p.after, p.limit));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mode = *e.mode.lock().unwrap();
        match mode {
            "ok" => Json(e.source.page(p.after.as_deref(), p.limit).await.unwrap()).into_response(),
            "500" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            "garbage" => "<html>oops</html>".into_response(),
            "wrong-shape" => Json(serde_json::json!({"items": []})).into_response(),
            "huge" => "x".repeat(4096).into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::OK.into_response()
            }
            _ => unreachable!(),
        }
    }

    async fn serve(source: StaticSnapshot) -> (String, Endpoint) {
        let endpoint = Endpoint {
            source,
            mode: Arc::new(Mutex::new("ok")),
            requests: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/users", get(users))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/users"), endpoint)
    }

    fn source(url: &str) -> HttpSnapshotSource {
        HttpSnapshotSource::new(url.parse().unwrap())
            .bearer_token(|| async { Ok("s3cret".to_owned()) })
    }

    #[tokio::test]
    async fn backfills_over_http_with_a_bearer_token() {
        let users = (0..7)
            .map(|i| SnapshotUser::new(format!("u{i}"), 2, format!("n{i}")))
            .collect();
        let (url, endpoint) = serve(StaticSnapshot::new(users)).await;
        let replica = UserReplica::in_memory("t");
        let report = Backfill::new(source(&url))
            .page_size(3)
            .run(&replica)
            .await
            .unwrap();
        assert_eq!((report.pages, report.users), (3, 7));
        assert_eq!(
            *endpoint.requests.lock().unwrap(),
            [
                "after=None limit=3",
                "after=Some(\"u2\") limit=3",
                "after=Some(\"u5\") limit=3"
            ]
        );
        assert_eq!(
            replica
                .get("u6")
                .await
                .unwrap()
                .unwrap()
                .display_name
                .as_deref(),
            Some("n6")
        );
    }

    #[tokio::test]
    async fn endpoint_failures_are_clear_errors_and_a_rerun_completes() {
        let users = (0..5)
            .map(|i| SnapshotUser::new(format!("u{i}"), 1, "n"))
            .collect();
        let (url, endpoint) = serve(StaticSnapshot::new(users)).await;
        let replica = UserReplica::in_memory("t");
        for (mode, expect) in [
            ("500", "snapshot endpoint answered http 500"),
            ("garbage", "malformed snapshot page: expected value"),
            (
                "wrong-shape",
                "malformed snapshot page: missing field `users`",
            ),
            (
                "huge",
                "malformed snapshot page: body larger than 1024 bytes",
            ),
            ("slow", "snapshot request failed"),
        ] {
            *endpoint.mode.lock().unwrap() = mode;
            let src = source(&url)
                .max_body(1024)
                .timeout(Duration::from_millis(200));
            let err = Backfill::new(src).run(&replica).await.unwrap_err();
            assert!(err.to_string().starts_with(expect), "{mode}: {err}");
        }
        let unauthorised = HttpSnapshotSource::new(url.parse().unwrap());
        let err = Backfill::new(unauthorised).run(&replica).await.unwrap_err();
        assert_eq!(err.to_string(), "snapshot endpoint answered http 401");
        let no_token = HttpSnapshotSource::new(url.parse().unwrap())
            .bearer_token(|| async { Err("idp unreachable".into()) });
        let err = Backfill::new(no_token).run(&replica).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not get a token for the snapshot endpoint: idp unreachable"
        );
        assert!(replica.get("u0").await.unwrap().is_none());

        *endpoint.mode.lock().unwrap() = "ok";
        Backfill::new(source(&url)).run(&replica).await.unwrap();
        assert_eq!(
            replica
                .get_many((0..5).map(|i| format!("u{i}")))
                .await
                .unwrap()
                .len(),
            5
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/users", listener.local_addr().unwrap());
        drop(listener);
        let err = Backfill::new(source(&url))
            .run(&UserReplica::in_memory("t"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackfillError::Snapshot(SnapshotError::Transport(_))),
            "{err}"
        );
    }
}
