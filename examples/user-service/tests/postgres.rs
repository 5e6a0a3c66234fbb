//! user-service on PostgreSQL: profile changes and their events leave through
//! the transactional outbox, and profiles survive a restart.

use std::sync::Arc;
use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_event_bus::memory::MemoryBus;
use tessera_event_bus::outbox::{Outbox, OutboxRelay, TableName};
use tessera_event_bus::{Publisher, SubscribeOptions, Subscriber};
use tessera_user_sync::producer::postgres::PgUserDirectory;
use user_service::{Users, app};

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn serve(idp: &TestIssuer, users: Users) -> String {
    let validator = idp.validator();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(validator, users);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn changes_leave_through_the_outbox_and_survive_a_restart() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(&database_url())
        .await
        .unwrap();
    let schema = format!("user_service_t{}", std::process::id());
    let outbox = Outbox::new(TableName::new(&schema, "outbox").unwrap());
    outbox.migrate(&pool).await.unwrap();
    let directory = || {
        PgUserDirectory::new(
            pool.clone(),
            TableName::new(&schema, "users").unwrap(),
            outbox.clone(),
            "/user-service",
        )
    };
    directory().migrate().await.unwrap();

    let bus = MemoryBus::new();
    let mut events = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("observer").event_types([
            "tessera.user.registered.v1",
            "tessera.user.profile_updated.v1",
        ]))
        .await
        .unwrap();
    let publisher: Arc<dyn Publisher> = Arc::new(bus.publisher());
    let relay = OutboxRelay::new(&outbox, pool.clone(), publisher)
        .start()
        .await
        .unwrap();

    let idp = TestIssuer::start().await.unwrap();
    let token = idp.token().subject("u-pg").claim("name", "Grace").sign();
    let client = reqwest::Client::new();
    let base = serve(&idp, Users::new(directory())).await;
    let res = client
        .get(format!("{base}/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .patch(format!("{base}/users/me"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"display_name":"Grace Hopper"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let mut seen = Vec::new();
    for _ in 0..2 {
        let d = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(d.event().attributes.ty.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(
        seen,
        [
            "tessera.user.registered.v1",
            "tessera.user.profile_updated.v1"
        ],
        "per-user order kept"
    );

    // A new instance on the same database sees the profile.
    let restarted = serve(&idp, Users::new(directory())).await;
    let body = client
        .get(format!("{restarted}/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["display_name"], "Grace Hopper");
    assert_eq!(me["version"], 2);

    relay.shutdown().await.unwrap();
    sqlx::query(&format!(r#"DROP SCHEMA "{schema}" CASCADE"#))
        .execute(&pool)
        .await
        .unwrap();
}
