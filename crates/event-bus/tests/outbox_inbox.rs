//! The inbox, alone and behind the outbox relay, against a real PostgreSQL
//! (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
#![cfg(feature = "postgres")]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::outbox::*;
use tessera_event_bus::{
    Envelope, EventContext, HandlerError, Router,
    inbox::{InboxRouterExt, InboxTransaction},
    memory::MemoryBus,
    outbox::OutboxRelay,
    router::{EventRequest, RetryPolicy},
};
use tower::ServiceExt as _;

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn concurrent_redeliveries_of_one_event_have_one_effect() {
    let db = TestDb::new().await;
    let inbox = db.inbox();
    inbox.migrate().await.unwrap();
    let table = effects_table(&db).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = inbox.handler(record_effect(table.clone(), Arc::clone(&calls)));

    let env = event("u1", 7);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let handler = handler.clone();
            let env = env.clone();
            tokio::spawn(async move {
                handler
                    .oneshot(EventRequest::new(env, EventContext::detached("comments")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every delivery is acked");
    }
    assert_eq!(effects(&db, &table).await, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    assert!(inbox.contains("comments", env.attributes()).await.unwrap());
    // Another group processes the same event on its own.
    handler
        .clone()
        .oneshot(EventRequest::new(
            env.clone(),
            EventContext::detached("audit"),
        ))
        .await
        .unwrap();
    assert_eq!(effects(&db, &table).await, 2);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_failed_handler_rolls_back_its_effects_and_the_record() {
    let db = TestDb::new().await;
    let inbox = db.inbox();
    inbox.migrate().await.unwrap();
    let table = effects_table(&db).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let t = table.clone();
    let a = Arc::clone(&attempts);
    let handler = inbox.handler(
        move |tx: &mut InboxTransaction, env: Envelope<UserChanged>, _ctx: EventContext| {
            let (table, attempts) = (t.clone(), Arc::clone(&a));
            Box::pin(async move {
                sqlx::query(&format!("INSERT INTO {table} (user_id, n) VALUES ($1, 0)"))
                    .bind(&env.data().user_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(HandlerError::transient)?;
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::transient("first attempt fails after writing"));
                }
                Ok(())
            }) as tessera_event_bus::inbox::TxFuture<'_>
        },
    );
    let env = event("u1", 1);
    let err = handler
        .clone()
        .oneshot(EventRequest::new(env.clone(), EventContext::detached("g")))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(effects(&db, &table).await, 0, "the write was rolled back");
    assert!(!inbox.contains("g", env.attributes()).await.unwrap());
    handler
        .oneshot(EventRequest::new(env.clone(), EventContext::detached("g")))
        .await
        .unwrap();
    assert_eq!(effects(&db, &table).await, 1);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn inbox_records_are_pruned_after_the_retention() {
    let db = TestDb::new().await;
    let inbox = db.inbox();
    inbox.migrate().await.unwrap();
    for n in 0..3 {
        let tx = inbox
            .begin("g", event("u1", n).attributes())
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(inbox.prune(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(inbox.prune(Duration::ZERO).await.unwrap(), 3);

    let tx = inbox
        .begin("g", event("u1", 9).attributes())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let pruner = inbox.spawn_pruner(Duration::ZERO, Duration::from_millis(20));
    let table = format!(r#""{}"."inbox""#, db.schema);
    eventually("pruned on schedule", || async {
        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&db.pool)
            .await
            .unwrap()
            == 0
    })
    .await;
    pruner.shutdown().await;
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_relay_killed_between_publish_and_mark_publishes_again_and_the_inbox_absorbs_it() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let inbox = db.inbox();
    inbox.migrate().await.unwrap();
    let table = effects_table(&db).await;
    let bus = MemoryBus::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let router = Router::new(Arc::new(bus.subscriber()), "comments")
        .retry(RetryPolicy::none())
        .handle_tx(&inbox, record_effect(table.clone(), Arc::clone(&calls)))
        .start()
        .await
        .unwrap();
    // Count what the bus carries, duplicates included.
    let wire = collect(&bus, "wire-tap", &[TYPE]).await;

    let events: Vec<_> = (0..10).map(|n| event(&format!("u{}", n % 2), n)).collect();
    db.commit_each(&outbox, &events).await;

    let publisher = ControlledPublisher::new(Arc::new(bus.publisher()));
    publisher
        .controls
        .hang_after_publish
        .store(true, Ordering::SeqCst);
    let doomed = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(publisher.clone()))
        .lease(Duration::from_millis(1500))
        .publish_timeout(Duration::from_millis(1000))
        .start()
        .await
        .unwrap();
    publisher.controls.hung.notified().await;
    doomed.abort();
    assert_eq!(wire.len(), 1, "published, never marked");
    assert_eq!(db.count("sent_at IS NOT NULL").await, 0);

    // A second relay picks the rows up once the dead one's lease expired.
    let relay = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(bus.publisher()))
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    wire.wait_for(11).await;
    eventually("every event handled", || async {
        effects(&db, &table).await == 10
    })
    .await;
    relay.shutdown().await.unwrap();
    router.shutdown().await.unwrap();

    assert_eq!(wire.len(), 11, "the first event went out twice");
    assert_eq!(effects(&db, &table).await, 10, "effects exactly once");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "the duplicate skipped the handler"
    );
    for (subject, ns) in wire.by_subject() {
        let mut firsts = ns.clone();
        firsts.dedup();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(firsts, sorted, "order of {subject}");
    }
    db.cleanup().await;
}
