//! The producer side: directories, just-in-time provisioning, and the
//! PostgreSQL outbox path.

mod common;

use std::sync::Arc;

use tessera_event_bus::{EventPublisher, SubscribeOptions, Subscriber, memory::MemoryBus};
use tessera_user_sync::{
    Profile, UserReplica,
    producer::{MemoryUserDirectory, ProducerError, Registration, UserDirectory},
    snapshot::Backfill,
};

fn profile(name: &str) -> Profile {
    Profile {
        display_name: name.to_owned(),
        ..Profile::default()
    }
}

const ALL_TYPES: [&str; 3] = [
    "tessera.user.registered.v1",
    "tessera.user.profile_updated.v1",
    "tessera.user.deleted.v1",
];

/// An in-memory user directory publishing to a bus whose `audit` group
/// receives every user event.
async fn audited_directory() -> (
    MemoryBus,
    Box<dyn tessera_event_bus::Subscription>,
    MemoryUserDirectory,
) {
    let bus = MemoryBus::new();
    let audit = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("audit").event_types(ALL_TYPES))
        .await
        .unwrap();
    let users = MemoryUserDirectory::new(EventPublisher::new(
        Arc::new(bus.publisher()),
        "/user-service",
    ));
    (bus, audit, users)
}

#[tokio::test]
async fn memory_directory_changes_bump_versions_and_emit_in_order() {
    let (_bus, mut sub, users) = audited_directory().await;
    users.register("u", profile("A")).await.unwrap();
    assert_eq!(
        users
            .update_profile("u", profile("B"))
            .await
            .unwrap()
            .version,
        2
    );
    let deleted = users.delete("u").await.unwrap();
    assert_eq!(
        (deleted.version, deleted.profile.display_name.as_str()),
        (3, "")
    );
    assert!(deleted.is_deleted());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = sub.next().await.unwrap().unwrap();
        let data: serde_json::Value = serde_json::from_slice(&d.event().data).unwrap();
        seen.push((
            d.event().event_type().to_owned(),
            data["version"].as_u64().unwrap(),
        ));
        d.ack().await.unwrap();
    }
    assert_eq!(
        seen,
        [
            ("tessera.user.registered.v1".to_owned(), 1),
            ("tessera.user.profile_updated.v1".to_owned(), 2),
            ("tessera.user.deleted.v1".to_owned(), 3)
        ]
    );
    assert!(matches!(
        users.update_profile("u", profile("C")).await,
        Err(ProducerError::Deleted(_))
    ));
    assert!(matches!(
        users.delete("u").await,
        Err(ProducerError::Deleted(_))
    ));
    assert!(matches!(
        users.update_profile("nobody", profile("C")).await,
        Err(ProducerError::NotFound(_))
    ));
    assert!(matches!(
        users.register(" ", profile("C")).await,
        Err(ProducerError::Invalid(_))
    ));
    let again = users.register("u", profile("Back")).await.unwrap();
    assert!(
        matches!(again, Registration::Existing(r) if r.is_deleted()),
        "no resurrection"
    );
}

#[tokio::test]
async fn a_failed_publish_undoes_the_change() {
    let bus = MemoryBus::new(); // no group bound: every publish is unroutable
    let users = MemoryUserDirectory::new(EventPublisher::new(
        Arc::new(bus.publisher()),
        "/user-service",
    ));
    let err = users.register("u", profile("A")).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("could not publish the user event: unroutable"),
        "{err}"
    );
    assert!(users.get("u").await.unwrap().is_none());
}

#[tokio::test]
async fn a_new_replica_backfills_from_the_directory() {
    let (_bus, _audit, users) = audited_directory().await;
    for i in 0..12 {
        users
            .register(&format!("u{i:02}"), profile(&format!("n{i}")))
            .await
            .unwrap();
    }
    users.delete("u05").await.unwrap();
    users.update_profile("u07", profile("seven")).await.unwrap();
    let replica = UserReplica::in_memory("comments");
    let report = Backfill::new(users)
        .page_size(5)
        .run(&replica)
        .await
        .unwrap();
    assert_eq!((report.pages, report.users), (3, 11));
    assert_eq!(replica.get("u07").await.unwrap().unwrap().version, 2);
    assert!(replica.get("u05").await.unwrap().is_none());
}

#[cfg(feature = "authn")]
pub(crate) mod jit {
    use std::{convert::Infallible, time::Duration};

    use http::{Request, Response, StatusCode};
    use tessera_authn::{AuthnLayer, JwtValidator, test_util::TestIssuer};
    use tessera_user_sync::provision::ProvisionLayer;
    use tower::{Service, ServiceBuilder, ServiceExt};

    use super::*;

    async fn issuer() -> (TestIssuer, JwtValidator) {
        let idp = TestIssuer::start().await.unwrap();
        let validator = idp.validator();
        (idp, validator)
    }

    fn app<D: UserDirectory>(
        validator: JwtValidator,
        directory: D,
    ) -> impl Service<
        Request<String>,
        Response = Response<axum::body::Body>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static {
        ServiceBuilder::new()
            .layer(AuthnLayer::optional(validator))
            .layer(ProvisionLayer::new(directory))
            .service_fn(|_req: Request<String>| async {
                Ok::<_, Infallible>(Response::new(axum::body::Body::from("ok")))
            })
    }

    fn request(token: Option<&str>) -> Request<String> {
        let mut req = Request::builder().uri("/comments");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.body(String::new()).unwrap()
    }

    pub(super) async fn fifty_first_requests<D: UserDirectory + Clone>(
        directory: D,
    ) -> (TestIssuer, Vec<StatusCode>) {
        let (idp, validator) = issuer().await;
        let token = idp
            .token()
            .subject("first-timer")
            .claim("preferred_username", "ft")
            .sign();
        let svc = app(validator, directory);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let svc = svc.clone();
            let token = token.clone();
            tasks.spawn(async move { svc.oneshot(request(Some(&token))).await.unwrap().status() });
        }
        let mut statuses = Vec::new();
        while let Some(s) = tasks.join_next().await {
            statuses.push(s.unwrap());
        }
        (idp, statuses)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_first_requests_register_one_user_and_emit_one_event() {
        let (bus, mut audit, users) = audited_directory().await;
        let (_idp, statuses) = fifty_first_requests(users.clone()).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        assert_eq!(users.len().await, 1);
        let user = users.get("first-timer").await.unwrap().unwrap();
        assert_eq!(
            (user.version, user.profile.display_name.as_str()),
            (1, "ft")
        );
        let first = audit.next().await.unwrap().unwrap();
        assert_eq!(first.event().event_type(), "tessera.user.registered.v1");
        assert_eq!(first.event().subject(), Some("first-timer"));
        first.ack().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(bus.queued("audit"), 0, "exactly one event");
    }

    #[tokio::test]
    async fn a_validator_with_custom_claims_provisions_through_with_claims() {
        #[derive(Debug, Clone, serde::Deserialize)]
        struct StaffClaims {
            nickname: String,
        }
        let idp = TestIssuer::start().await.unwrap();
        let validator = JwtValidator::builder()
            .claims::<StaffClaims>()
            .issuer(idp.trusted())
            .build()
            .unwrap();
        let (_bus, _audit, users) = audited_directory().await;
        let svc = ServiceBuilder::new()
            .layer(AuthnLayer::new(validator))
            .layer(ProvisionLayer::new(users.clone()).with_claims(
                |claims: &tessera_authn::Claims<StaffClaims>| tessera_user_sync::events::Profile {
                    display_name: claims.extra.nickname.clone(),
                    ..Default::default()
                },
            ))
            .service_fn(|_req: Request<String>| async {
                Ok::<_, Infallible>(Response::new(axum::body::Body::from("ok")))
            });
        let token = idp
            .token()
            .subject("staff-1")
            .claim("nickname", "Grace")
            .sign();
        let res = svc.oneshot(request(Some(&token))).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let user = users.get("staff-1").await.unwrap();
        assert_eq!(
            user.map(|u| u.profile.display_name).as_deref(),
            Some("Grace"),
            "provisioned from the custom claims"
        );
    }

    #[tokio::test]
    async fn anonymous_requests_pass_and_failures_fail_closed() {
        let (idp, validator) = issuer().await;
        let unbound = MemoryBus::new(); // publishing fails: nobody is bound
        let users = MemoryUserDirectory::new(EventPublisher::new(
            Arc::new(unbound.publisher()),
            "/user-service",
        ));
        let svc = app(validator.clone(), users.clone());
        assert_eq!(
            svc.clone().oneshot(request(None)).await.unwrap().status(),
            StatusCode::OK
        );
        let token = idp.token().subject("u1").sign();
        let res = svc.clone().oneshot(request(Some(&token))).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "not passed on unprovisioned"
        );
        assert!(users.get("u1").await.unwrap().is_none());
        let no_sub = idp.token().without_claim("sub").sign();
        assert_eq!(
            svc.oneshot(request(Some(&no_sub))).await.unwrap().status(),
            StatusCode::OK
        );
        let bad = "not-a-token";
        let res = app(validator, users)
            .oneshot(request(Some(bad)))
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "authn still decides first"
        );
    }

    #[tokio::test]
    async fn a_deleted_account_is_refused_and_not_recreated() {
        let (idp, validator) = issuer().await;
        let bus = MemoryBus::new();
        let _sub = bus
            .subscriber()
            .subscribe(SubscribeOptions::new("x").event_types(ALL_TYPES))
            .await
            .unwrap();
        let users = MemoryUserDirectory::new(EventPublisher::new(
            Arc::new(bus.publisher()),
            "/user-service",
        ));
        users.register("gone", profile("Gone")).await.unwrap();
        users.delete("gone").await.unwrap();
        let token = idp
            .token()
            .subject("gone")
            .claim("name", "Gone Again")
            .sign();
        let res = app(validator, users.clone())
            .oneshot(request(Some(&token)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(users.get("gone").await.unwrap().unwrap().is_deleted());
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use sqlx::PgPool;
    use tessera_event_bus::outbox::{Outbox, TableName};
    use tessera_user_sync::producer::postgres::{DEFAULT_MIGRATION, PgUserDirectory};

    use super::*;
    use crate::common::postgres::{database_url, drop_schema, fresh_schema, user_directory};

    async fn fresh(schema: &str) -> (PgPool, PgUserDirectory, Outbox) {
        let pool = fresh_schema(schema).await;
        let (users, outbox) = user_directory(&pool, schema).await;
        users.migrate().await.expect("migrate is idempotent");
        (pool, users, outbox)
    }

    async fn outbox_rows(pool: &PgPool, schema: &str) -> Vec<(String, String)> {
        sqlx::query_as(&format!(
            "SELECT event_type, subject FROM \"{schema}\".outbox ORDER BY seq"
        ))
        .fetch_all(pool)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_shipped_users_migration_is_the_default_tables_sql() {
        let lazy = PgPool::connect_lazy(&database_url()).unwrap();
        let users = PgUserDirectory::new(
            lazy.clone(),
            PgUserDirectory::default_table(),
            Outbox::default(),
            "/u",
        );
        assert_eq!(users.migration_sql(), DEFAULT_MIGRATION);
        let custom = PgUserDirectory::new(
            lazy,
            TableName::new("accounts", "people").unwrap(),
            Outbox::default(),
            "/u",
        );
        assert!(custom.migration_sql().contains("\"accounts\".\"people\""));
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn row_changes_and_outbox_rows_commit_together() {
        let schema = "us_test_producer";
        let (pool, users, _outbox) = fresh(schema).await;
        users.register("u", profile("A")).await.unwrap();
        assert_eq!(
            users
                .update_profile("u", profile("B"))
                .await
                .unwrap()
                .version,
            2
        );
        // A rolled-back transaction leaves neither the change nor the event.
        let mut tx = pool.begin().await.unwrap();
        users
            .update_profile_in(&mut tx, "u", profile("never"))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            users.get("u").await.unwrap().unwrap().profile.display_name,
            "B"
        );
        let deleted = users.delete("u").await.unwrap();
        assert_eq!(deleted.version, 3);
        assert!(matches!(
            users.delete("u").await,
            Err(ProducerError::Deleted(_))
        ));
        assert!(matches!(
            users.update_profile("x", profile("x")).await,
            Err(ProducerError::NotFound(_))
        ));
        assert!(
            matches!(users.register("u", profile("again")).await.unwrap(), Registration::Existing(r) if r.is_deleted())
        );
        assert_eq!(
            outbox_rows(&pool, schema).await,
            [
                ("tessera.user.registered.v1".to_owned(), "u".to_owned()),
                ("tessera.user.profile_updated.v1".to_owned(), "u".to_owned()),
                ("tessera.user.deleted.v1".to_owned(), "u".to_owned()),
            ]
        );
        // The directory is the snapshot source of `GET /users`.
        users.register("v", profile("V")).await.unwrap();
        let replica = UserReplica::in_memory("t");
        let report = Backfill::new(users)
            .page_size(1)
            .run(&replica)
            .await
            .unwrap();
        assert_eq!(report.users, 1, "deleted users are not listed");
        drop_schema(&pool, schema).await;
    }

    #[cfg(feature = "authn")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL"]
    async fn fifty_concurrent_first_requests_on_postgres_insert_one_row_and_one_outbox_event() {
        let schema = "us_test_jit";
        let (pool, users, _outbox) = fresh(schema).await;
        use http::StatusCode;
        let (_idp, statuses) = super::jit::fifty_first_requests(users).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".users"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 1);
        assert_eq!(
            outbox_rows(&pool, schema).await,
            [(
                "tessera.user.registered.v1".to_owned(),
                "first-timer".to_owned()
            )]
        );
        drop_schema(&pool, schema).await;
    }
}
