//! Backfill at start: the replica is filled from the user service's snapshot
//! endpoint, with a client-credentials token from the issuer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::RawQuery;
use axum::routing::get;
use comment_service::{BackfillClient, SNAPSHOT_SCOPE, Storage};
use common::{Service, author_of, token};
use serde_json::{Value, json};
use tessera_authn::AuthnLayer;
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authz::RequireScopes;
use tessera_event_bus::memory::MemoryBus;
use tessera_user_sync::snapshot::{SnapshotPage, SnapshotUser};

/// A stand-in for the user service's `GET /users?after=&limit=`: two pages,
/// only for tokens with scope `users:snapshot`. Counts the pages served.
async fn fake_user_service(idp: &TestIssuer) -> (String, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let validator = idp.validator();
    let app = axum::Router::new()
        .route(
            "/users",
            get(move |RawQuery(query): RawQuery| {
                counter.fetch_add(1, Ordering::SeqCst);
                let after_first = query.unwrap_or_default().contains("after=u1");
                let page = if after_first {
                    SnapshotPage::new(vec![SnapshotUser::new("u2", 1, "Grace")], None)
                } else {
                    SnapshotPage::new(vec![SnapshotUser::new("u1", 3, "Ada")], Some("u1".into()))
                };
                async move { axum::Json(page) }
            }),
        )
        .route_layer(RequireScopes::all([SNAPSHOT_SCOPE]))
        .layer(AuthnLayer::new(validator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, served)
}

fn client(base: &str, secret: &str) -> BackfillClient {
    BackfillClient {
        user_service: base.parse().unwrap(),
        client_id: "comment-service".to_owned(),
        client_secret: secret.to_owned(),
        audience: None,
    }
}

#[tokio::test]
async fn backfill_fills_the_replica_with_a_client_credentials_token() {
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(TestClient::new("comment-service", "s3cret").scopes([SNAPSHOT_SCOPE]));
    let (users_base, served) = fake_user_service(&idp).await;

    // The stand-in refuses callers without the snapshot scope.
    let plain = reqwest::Client::new();
    let res = plain
        .get(format!("{users_base}/users"))
        .bearer_auth(token(&idp, "alice", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(served.load(Ordering::SeqCst), 0);

    let storage = Storage::in_memory();
    // A wrong secret: no token, the backfill fails and applies nothing.
    let wrong = client(&users_base, "wrong").backfill(idp.issuer()).unwrap();
    assert!(storage.backfill(&wrong).await.is_err());
    assert_eq!(served.load(Ordering::SeqCst), 0);

    let backfill = client(&users_base, "s3cret")
        .backfill(idp.issuer())
        .unwrap();
    let report = storage.backfill(&backfill).await.unwrap();
    assert_eq!((report.pages, report.users), (2, 2));
    assert_eq!(served.load(Ordering::SeqCst), 2);
    assert!(idp.token_requests() >= 1);

    // The names are there before any event arrives.
    let bus = MemoryBus::new();
    let svc = Service::start(&idp, &bus, storage).await;
    let (_, ada) = svc
        .post("p1", &token(&idp, "u1", "comments:write"), "hi")
        .await;
    assert_eq!(ada["author"], json!({ "id": "u1", "display_name": "Ada" }));
    let (_, grace) = svc
        .post("p1", &token(&idp, "u2", "comments:write"), "yo")
        .await;
    let list: Value = svc.list("p1", &token(&idp, "r", "")).await;
    assert_eq!(author_of(&list, &grace["id"])["display_name"], "Grace");
    svc.stop().await;
}
