//! End to end on PostgreSQL and NATS JetStream, with nothing changed but the
//! bus: user row change → outbox → relay → NATS → router → PostgreSQL
//! replica, with the bus's connection cut midway (it connects through the
//! test kit's relay). The replica converges, nothing is lost, nothing is
//! applied twice.
//!
//! Needs DATABASE_URL (default `postgres://postgres@127.0.0.1:5432/test`)
//! and NATS_URL (default `nats://127.0.0.1:4222`, JetStream enabled).
#![cfg(feature = "postgres")]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::postgres::{drop_schema, fresh_schema, user_directory};
use tessera_event_bus::{
    Router,
    outbox::{OutboxRelay, TableName},
    router::RetryPolicy,
    testkit::NatsTestBackend,
};
use tessera_user_sync::{
    Profile, UserReplica,
    producer::UserDirectory,
    store::{
        DeletedUser, HookFuture, ReplicatedUser, UserState,
        postgres::{PgReplicaStore, PgTransaction},
    },
};

/// Runs `sql` (an insert into the audit table) with the user id and version,
/// in the hook's transaction.
fn record_applied<'a>(
    tx: &'a mut PgTransaction,
    sql: String,
    user_id: &'a str,
    version: u64,
) -> HookFuture<'a> {
    Box::pin(async move {
        sqlx::query(&sql)
            .bind(user_id)
            .bind(version as i64)
            .execute(&mut **tx)
            .await?;
        Ok(())
    })
}

fn profile(name: String) -> Profile {
    Profile {
        display_name: name,
        email: Some("someone@example.com".to_owned()),
        ..Profile::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and NATS"]
async fn user_changes_reach_the_replica_through_outbox_and_nats_despite_a_cut_connection() {
    let schema = "us_test_e2e_nats";
    let name = format!("us-test-e2e-nats-{}", std::process::id());
    let pool = fresh_schema(schema).await;

    // The user service: users table + outbox.
    let (users, outbox) = user_directory(&pool, schema).await;

    // The comment service: replica + an audit of every applied change, in the replica's transaction.
    let store = PgReplicaStore::new(pool.clone(), TableName::new(schema, "replica").unwrap());
    store.migrate().await.unwrap();
    sqlx::raw_sql(&format!("CREATE TABLE \"{schema}\".applied (user_id TEXT NOT NULL, version BIGINT NOT NULL, kind TEXT NOT NULL)"))
        .execute(&pool)
        .await
        .unwrap();
    let deletions = Arc::new(AtomicUsize::new(0));
    let (audit_updated, audit_deleted) = (
        format!("INSERT INTO \"{schema}\".applied VALUES ($1, $2, 'updated')"),
        format!("INSERT INTO \"{schema}\".applied VALUES ($1, $2, 'deleted')"),
    );
    let d = Arc::clone(&deletions);
    let replica = UserReplica::builder("comments", store)
        .on_updated(move |tx: &mut PgTransaction, user: &ReplicatedUser| {
            record_applied(tx, audit_updated.clone(), &user.user_id, user.version)
        })
        .on_deleted(move |tx: &mut PgTransaction, user: &DeletedUser| {
            d.fetch_add(1, Ordering::SeqCst);
            record_applied(tx, audit_deleted.clone(), &user.user_id, user.version)
        })
        .build();

    let backend =
        NatsTestBackend::with_config(|c| c.publish_timeout(Duration::from_secs(20))).await;
    let bus = backend.bus();
    // Bind first, then produce.
    let retry = RetryPolicy::exponential()
        .max_attempts(10)
        .min_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(500));
    let router = replica
        .route(Router::new(Arc::new(bus.subscriber()), format!("{name}.comments")).retry(retry))
        .start()
        .await
        .unwrap();
    let relay = OutboxRelay::new(&outbox, pool.clone(), Arc::new(bus.publisher()))
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();

    let n_users = 30;
    for round in 0..4u32 {
        for i in 0..n_users {
            let id = format!("user-{i:02}");
            match round {
                0 => {
                    users
                        .register(&id, profile(format!("{id} r0")))
                        .await
                        .unwrap();
                }
                3 if i % 5 == 0 => {
                    users.delete(&id).await.unwrap();
                }
                _ => {
                    users
                        .update_profile(&id, profile(format!("{id} r{round}")))
                        .await
                        .unwrap();
                }
            }
        }
        if round == 1 {
            // Midway: the bus's connection (publisher and consumer share it) is cut.
            backend.relay().cut();
        }
    }

    // Converges: every user in the replica as in the user service.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut pending = Vec::new();
        for i in 0..n_users {
            let id = format!("user-{i:02}");
            let source = users.get(&id).await.unwrap().unwrap();
            let ok = match replica.state(&id).await.unwrap() {
                Some(UserState::Live(u)) => {
                    !source.is_deleted()
                        && u.version == source.version
                        && u.display_name.as_deref() == Some(&*source.profile.display_name)
                }
                Some(UserState::Deleted(t)) => source.is_deleted() && t.version == source.version,
                _ => false,
            };
            if !ok {
                pending.push(id);
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not converged: {pending:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing applied twice: each (user, version) took effect at most once.
    let duplicates: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT user_id, version FROM \"{schema}\".applied GROUP BY 1, 2 HAVING count(*) > 1) d"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    assert_eq!(
        deletions.load(Ordering::SeqCst),
        n_users / 5,
        "one on_deleted per deleted user"
    );
    let email: Option<String> =
        sqlx::query_scalar(&format!("SELECT max(email) FROM \"{schema}\".replica"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(email, None, "the replica never stored an email");
    let backlog = outbox.backlog(&pool).await.unwrap();
    assert_eq!((backlog.pending, backlog.parked), (0, 0), "{backlog:?}");

    relay.shutdown().await.unwrap();
    router.shutdown().await.unwrap();
    bus.close().await;
    drop_schema(&pool, schema).await;
}
