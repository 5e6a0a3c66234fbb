//! The PostgreSQL replica store. Each test works in its own schema and drops it.
//!
//! Run with `cargo test -p tessera-user-sync --all-features -- --include-ignored`
//! (DATABASE_URL, default `postgres://postgres@127.0.0.1:5432/test`).
#![cfg(feature = "postgres")]

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use common::{
    histories_and_shuffle,
    postgres::{PgTestStore, drop_schema, fresh_store},
};
use proptest::prelude::*;
use sqlx::PgPool;
use tessera_user_sync::{
    ApplyError, Fields, UserReplica,
    events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered},
    store::{
        DeletedUser, Outcome, ReplicaStore, UserState,
        postgres::{DEFAULT_MIGRATION, PgReplicaStore, PgTransaction, TableName},
    },
    testkit::cases,
};

// The store contract, on PostgreSQL.
mod conformance {
    tessera_user_sync::replica_store_tests!(
        crate::common::postgres::PgTestStore::connect().await,
        #[ignore = "needs PostgreSQL"]
    );
}

#[tokio::test]
async fn the_shipped_migration_is_the_default_tables_sql() {
    let sql = DEFAULT_MIGRATION;
    assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"tessera\".\"user_replica\""));
    let lazy = PgPool::connect_lazy(&common::postgres::database_url()).unwrap();
    {
        let default = PgReplicaStore::new(lazy.clone(), PgReplicaStore::default_table());
        assert_eq!(default.migration_sql(), sql);
        let other = PgReplicaStore::new(lazy, TableName::new("comments", "authors").unwrap());
        let custom = other.migration_sql();
        assert!(custom.contains("\"comments\".\"authors\""));
        assert!(custom.contains("\"authors_live_applied_at\""));
        assert!(!custom.contains("\"tessera\""), "{custom}");
    }
    for (schema, table) in [
        ("x; drop", "t"),
        ("Upper", "t"),
        ("s", ""),
        ("pg_catalog", "t"),
        ("s", "1t"),
    ] {
        assert!(TableName::new(schema, table).is_err(), "{schema}.{table}");
    }
}

/// A replica on a fresh `schema` holding a `comments` table (two comments by
/// `u`, one by `v`), whose `on_deleted` hook anonymises the user's comments
/// in the tombstone's transaction, then fails its first `failures` calls;
/// and the count of its calls.
async fn anonymising_replica(
    schema: &str,
    failures: usize,
) -> (PgPool, UserReplica<PgReplicaStore>, Arc<AtomicUsize>) {
    let (pool, store) = fresh_store(schema).await;
    sqlx::raw_sql(&format!(
        "CREATE TABLE \"{schema}\".comments (id INT PRIMARY KEY, author_id TEXT, author_name TEXT);
         INSERT INTO \"{schema}\".comments VALUES (1, 'u', 'Ada'), (2, 'u', 'Ada'), (3, 'v', 'Bob');"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let anonymise = format!(
        "UPDATE \"{schema}\".comments SET author_id = NULL, author_name = 'deleted user' WHERE author_id = $1"
    );
    let replica = UserReplica::builder("comments", store)
        .on_deleted(move |tx: &mut PgTransaction, user: &DeletedUser| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            let sql = anonymise.clone();
            Box::pin(async move {
                sqlx::query(&sql)
                    .bind(&user.user_id)
                    .execute(&mut **tx)
                    .await?;
                if n < failures {
                    return Err("search index unavailable".into());
                }
                Ok(())
            })
        })
        .build();
    (pool, replica, calls)
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn the_on_deleted_hook_writes_in_the_tombstones_transaction() {
    let schema = "us_test_hook_tx";
    let (pool, replica, calls) = anonymising_replica(schema, 0).await;
    let mut outcomes = Vec::new();
    for event in [
        UserEvent::from(UserRegistered::new("u", 1, "Ada")),
        UserDeleted::new("u", 3).into(),
        UserDeleted::new("u", 3).into(),
    ] {
        outcomes.push(replica.apply(event).await.unwrap());
    }
    assert_eq!(
        outcomes,
        [Outcome::Inserted, Outcome::Deleted, Outcome::Ignored]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the duplicate ran no hook");
    let anonymised = count(&pool, &format!(
        "SELECT count(*) FROM \"{schema}\".comments WHERE author_name = 'deleted user' AND author_id IS NULL"
    ))
    .await;
    assert_eq!(anonymised, 2);
    drop_schema(&pool, schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_failing_hook_rolls_back_the_tombstone_and_the_hooks_own_writes() {
    let schema = "us_test_hook_rollback";
    let (pool, replica, _calls) = anonymising_replica(schema, 1).await;
    replica
        .apply(UserRegistered::new("u", 1, "Ada"))
        .await
        .unwrap();
    let err = replica.apply(UserDeleted::new("u", 2)).await.unwrap_err();
    assert!(
        matches!(err, ApplyError::Hook { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(
        replica.get("u").await.unwrap().is_some(),
        "tombstone rolled back"
    );
    let still = count(
        &pool,
        &format!("SELECT count(*) FROM \"{schema}\".comments WHERE author_id = 'u'"),
    )
    .await;
    assert_eq!(still, 2, "the hook's update rolled back with it");
    assert_eq!(
        replica.apply(UserDeleted::new("u", 2)).await.unwrap(),
        Outcome::Deleted
    );
    assert_eq!(replica.get("u").await.unwrap(), None);
    drop_schema(&pool, schema).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn undeclared_fields_never_reach_the_table() {
    let schema = "us_test_minimisation";
    let (pool, store) = fresh_store(schema).await;
    let replica = UserReplica::builder("t", store)
        .keep(Fields::DISPLAY_NAME | Fields::USERNAME)
        .build();
    replica
        .apply(
            UserRegistered::new("a", 1, "A")
                .username("a")
                .email("a@example.com"),
        )
        .await
        .unwrap();
    let (username, email): (Option<String>, Option<String>) = sqlx::query_as(&format!(
        "SELECT username, email FROM \"{schema}\".users WHERE user_id = 'a'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(username.as_deref(), Some("a"));
    assert_eq!(email, None, "data minimisation: never stored");
    drop_schema(&pool, schema).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    #[ignore = "needs PostgreSQL"]
    fn any_permutation_with_duplicates_converges_to_the_in_order_state_on_postgres(
        (in_order, shuffled) in histories_and_shuffle()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let kit = PgTestStore::connect().await;
            // Half one by one, the rest as one batch: both paths go through the gate.
            let (singles, batch) = shuffled.split_at(shuffled.len() / 2);
            cases::converges_like_in_order(&kit, "converges", &in_order, singles, batch).await;
        });
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn an_unreachable_database_is_a_transient_error_not_a_panic() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let store = PgReplicaStore::new(pool, PgReplicaStore::default_table());
    let replica = UserReplica::builder("t", store).build();
    let err = replica
        .apply(UserRegistered::new("u", 1, "A"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().starts_with("replica store database error"),
        "{err}"
    );
    assert!(replica.get("u").await.is_err());
    assert!(replica.store().state("u").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL"]
async fn router_deliveries_are_applied_in_batches_and_converge() {
    use tessera_event_bus::{EventPublisher, Router, memory::MemoryBus, router::RetryPolicy};
    let schema = "us_test_router_batches";
    let (pool, store) = fresh_store(schema).await;
    let fail_once = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&fail_once);
    let replica = UserReplica::builder("comments", store)
        .batch(128, std::time::Duration::from_millis(5))
        .on_deleted(move |_: &mut PgTransaction, _: &DeletedUser| {
            // The first batch with a deletion fails: all its deliveries are retried.
            let n = f.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Err("transient".into())
                } else {
                    Ok(())
                }
            })
        })
        .build();
    let bus = MemoryBus::new();
    let retry = RetryPolicy::exponential()
        .max_attempts(10)
        .min_delay(std::time::Duration::from_millis(5))
        .max_delay(std::time::Duration::from_millis(50));
    let router = replica
        .route(
            Router::new(Arc::new(bus.subscriber()), "comments")
                .concurrency(256)
                .prefetch(512)
                .retry(retry),
        )
        .start()
        .await
        .unwrap();
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
    let users = 100u64;
    for v in 1..=5u64 {
        for i in 0..users {
            let id = format!("u{i:03}");
            if v == 1 {
                events
                    .publish(UserRegistered::new(&id, 1, format!("{id} v1")))
                    .await
                    .unwrap();
            } else if v == 5 && i % 10 == 0 {
                events.publish(UserDeleted::new(&id, 5)).await.unwrap();
            } else {
                events
                    .publish(UserProfileUpdated::new(&id, v, format!("{id} v{v}")))
                    .await
                    .unwrap();
            }
        }
    }
    // An invalid event is refused alone, not with its batch.
    events
        .publish(UserProfileUpdated::new("u001", 0, "zero"))
        .await
        .unwrap();
    let ids: Vec<String> = (0..users).map(|i| format!("u{i:03}")).collect();
    let mut converged = false;
    for _ in 0..500 {
        let live = replica.get_many(ids.clone()).await.unwrap();
        if live.len() == 90 && live.values().all(|u| u.version == 5) {
            converged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(converged, "the replica did not converge");
    for i in (0..users).step_by(10) {
        assert!(matches!(
            replica.state(&format!("u{i:03}")).await.unwrap(),
            Some(UserState::Deleted(_))
        ));
    }
    router.shutdown().await.unwrap();
    let dead = bus.dead_letters("comments");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].reason.contains("version 0 is out of range"),
        "{}",
        dead[0].reason
    );
    assert_eq!(
        fail_once.load(Ordering::SeqCst),
        10 + 1,
        "one failure, then each deletion once"
    );
    drop_schema(&pool, schema).await;
}
