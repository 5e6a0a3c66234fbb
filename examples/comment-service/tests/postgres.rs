//! comment-service on PostgreSQL: comments and the replica survive a restart,
//! anonymisation commits with the tombstone, and the inbox skips redeliveries.
//!
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); each
//! test works in its own schema and drops it at the end.

mod common;

use comment_service::Storage;
use common::{Service, author_of, idle, token, users};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_event_bus::memory::MemoryBus;
use tessera_user_sync::events::{UserDeleted, UserProfileUpdated, UserRegistered};

async fn pool() -> PgPool {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    PgPool::connect(&url).await.unwrap()
}

fn schema() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("cs_test_{}", &id[..16])
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn data_is_kept_across_a_restart_and_deletion_anonymises() {
    let pool = pool().await;
    let schema = schema();
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let users = users(&bus);
    let alice = token(&idp, "alice", "comments:write");
    let bob = token(&idp, "bob", "comments:write");

    let svc = Service::start(
        &idp,
        &bus,
        Storage::postgres(pool.clone(), &schema).await.unwrap(),
    )
    .await;
    users
        .publish(UserRegistered::new("alice", 1, "Alice"))
        .await
        .unwrap();
    users
        .publish(UserRegistered::new("bob", 1, "Bob"))
        .await
        .unwrap();
    idle(&bus).await;
    let (status, a) = svc.post("p1", &alice, "hello").await;
    assert_eq!(status, 201);
    assert_eq!(
        a["author"],
        json!({ "id": "alice", "display_name": "Alice" })
    );
    let (_, b) = svc.post("p1", &bob, "hi alice").await;
    let (_, gone) = svc.post("p1", &bob, "to be deleted").await;
    assert_eq!(svc.delete(gone["id"].as_str().unwrap(), &alice).await, 403);
    assert_eq!(svc.delete(gone["id"].as_str().unwrap(), &bob).await, 204);
    svc.stop().await;

    // While the service is down, alice renames (the queue keeps the event).
    users
        .publish(UserProfileUpdated::new("alice", 2, "Alice Liddell"))
        .await
        .unwrap();

    // A new instance on the same schema (migrations are idempotent).
    let svc = Service::start(
        &idp,
        &bus,
        Storage::postgres(pool.clone(), &schema).await.unwrap(),
    )
    .await;
    let list = svc
        .eventually("p1", &bob, |l| {
            author_of(l, &a["id"])["display_name"] == "Alice Liddell"
        })
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["text"], "hello");
    assert_eq!(list[1]["text"], "hi alice");
    assert_eq!(
        author_of(&list, &b["id"]),
        &json!({ "id": "bob", "display_name": "Bob" })
    );

    // Bob deletes his account: his comment is anonymised in the same
    // transaction as the tombstone.
    users.publish(UserDeleted::new("bob", 2)).await.unwrap();
    let list = svc
        .eventually("p1", &alice, |l| author_of(l, &b["id"]).is_null())
        .await;
    assert_eq!(list[1]["text"], "hi alice");
    let anonymised: Option<String> = sqlx::query_scalar(&format!(
        "SELECT author_id FROM \"{schema}\".comments WHERE id = $1"
    ))
    .bind(b["id"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(anonymised, None);
    assert_eq!(svc.delete(b["id"].as_str().unwrap(), &bob).await, 403);
    svc.stop().await;

    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_inbox_records_each_event_once_and_skips_redeliveries() {
    let pool = pool().await;
    let schema = schema();
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let users = users(&bus);
    let storage = Storage::postgres(pool.clone(), &schema).await.unwrap();
    let storage_for_pruning = storage.clone();
    let svc = Service::start(&idp, &bus, storage).await;

    let carol = token(&idp, "carol", "comments:write");
    let envelope = users.envelope(UserRegistered::new("carol", 1, "Carol"));
    users.publish_envelope(&envelope).await.unwrap();
    idle(&bus).await;
    assert_eq!(
        svc.post("p9", &carol, "hey").await.1["author"]["display_name"],
        "Carol"
    );

    // Forget the replica row behind the inbox's back, then redeliver the same
    // envelope (same id and source), as a broker may: the inbox skips it, so
    // the row does not come back.
    sqlx::query(&format!(
        "DELETE FROM \"{schema}\".user_replica WHERE user_id = 'carol'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    users.publish_envelope(&envelope).await.unwrap();
    idle(&bus).await;
    assert_eq!(
        svc.post("p9", &carol, "again").await.1["author"]["display_name"],
        json!(null),
        "a redelivered event must not be applied twice"
    );

    // A new event is applied, and recorded.
    users
        .publish(UserProfileUpdated::new("carol", 2, "Caroline"))
        .await
        .unwrap();
    idle(&bus).await;
    assert_eq!(
        svc.post("p9", &carol, "third").await.1["author"]["display_name"],
        "Caroline"
    );
    let recorded: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".inbox WHERE consumer_group = 'comment-service'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, 2, "two distinct events, each recorded once");

    // Pruning removes records past the retention (here: all of them).
    let pruner = storage_for_pruning
        .spawn_inbox_pruner(Duration::ZERO, Duration::from_secs(3600))
        .expect("PostgreSQL has an inbox");
    let mut left = recorded;
    for _ in 0..100 {
        left = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".inbox"))
            .fetch_one(&pool)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pruner.shutdown().await;
    assert_eq!(left, 0);
    assert!(
        Storage::in_memory()
            .spawn_inbox_pruner(Duration::ZERO, Duration::ZERO)
            .is_none()
    );
    assert!(bus.dead_letters(comment_service::GROUP).is_empty());
    svc.stop().await;

    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
