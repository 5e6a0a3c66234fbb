//! The transactional outbox and its relay against a real PostgreSQL
//! (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test works in a schema of its own.
#![cfg(feature = "postgres")]

mod common;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use common::outbox::*;
use tessera_event_bus::{
    Attributes, DeadLetterQueue, Envelope, RawEvent,
    memory::MemoryBus,
    outbox::{OutboxError, OutboxRelay, OutboxRelayHandle},
};

fn fast_relay(
    outbox: &tessera_event_bus::outbox::Outbox,
    db: &TestDb,
    publisher: Arc<dyn tessera_event_bus::Publisher>,
) -> OutboxRelay {
    OutboxRelay::new(outbox, db.pool.clone(), publisher)
        .poll_interval(Duration::from_millis(50))
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .publish_timeout(Duration::from_secs(2))
        .lease(Duration::from_secs(5))
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_rolled_back_transaction_publishes_nothing() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;

    let mut tx = db.pool.begin().await.unwrap();
    outbox.enqueue(&mut tx, &event("u1", 1)).await.unwrap();
    tx.rollback().await.unwrap();
    let committed = event("u1", 2);
    db.commit_each(&outbox, std::slice::from_ref(&committed))
        .await;

    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()));
    let report = relay.publish_pending().await.unwrap();
    assert_eq!((report.claimed, report.published), (1, 1));
    got.wait_for(1).await;
    assert_eq!(got.ids(), [committed.id()]);
    assert_eq!(relay.publish_pending().await.unwrap().claimed, 0);
    assert_eq!(db.count("true").await, 1);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn committed_events_are_published_once_in_per_subject_order() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()))
        .batch_size(7)
        .start()
        .await
        .unwrap();

    // Five subjects written concurrently, each in its own order; a batch
    // form and single enqueues mixed.
    let mut writers = Vec::new();
    for s in 0..5 {
        let pool = db.pool.clone();
        let outbox = outbox.clone();
        writers.push(tokio::spawn(async move {
            let user = format!("u{s}");
            for chunk in (0..40).collect::<Vec<u32>>().chunks(4) {
                let mut tx = pool.begin().await.unwrap();
                if s % 2 == 0 {
                    let envs: Vec<_> = chunk.iter().map(|&n| event(&user, n)).collect();
                    outbox.enqueue_all(&mut tx, &envs).await.unwrap();
                } else {
                    for &n in chunk {
                        outbox.enqueue(&mut tx, &event(&user, n)).await.unwrap();
                    }
                }
                tx.commit().await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    got.wait_for(200).await;
    relay.shutdown().await.unwrap();

    let by_subject = got.by_subject();
    assert_eq!(by_subject.len(), 5);
    for (subject, ns) in by_subject {
        assert_eq!(ns, (0..40).collect::<Vec<_>>(), "order of {subject}");
    }
    let mut ids = got.ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "no event twice");
    assert_eq!(db.count("sent_at IS NULL").await, 0);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn enqueue_orders_rows_of_one_subject_by_commit() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;

    // tx1 enqueues first; tx2 for the same subject must wait for tx1 to end,
    // so it can never commit first with a later row.
    let mut tx1 = db.pool.begin().await.unwrap();
    outbox.enqueue(&mut tx1, &event("u1", 1)).await.unwrap();
    let (pool, ob) = (db.pool.clone(), outbox.clone());
    let second = tokio::spawn(async move {
        let mut tx2 = pool.begin().await.unwrap();
        ob.enqueue(&mut tx2, &event("u1", 2)).await.unwrap();
        tx2.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "tx2 waits for tx1's subject lock");
    // Another subject is not held up.
    db.commit_each(&outbox, &[event("u2", 1)]).await;
    tx1.commit().await.unwrap();
    second.await.unwrap();

    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()));
    relay.publish_pending().await.unwrap();
    got.wait_for(3).await;
    assert_eq!(got.by_subject()["u1"], [1, 2]);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn rows_wait_while_the_broker_is_unreachable_then_all_are_published() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let publisher = ControlledPublisher::new(Arc::new(bus.publisher()));
    publisher.controls.down.store(true, Ordering::SeqCst);
    // Even a relay that gives up on refused rows at once never parks one
    // because the broker is out of reach.
    let relay = fast_relay(&outbox, &db, Arc::new(publisher.clone()))
        .park_after(1)
        .start()
        .await
        .unwrap();

    let events: Vec<_> = (0..30).map(|n| event(&format!("u{}", n % 3), n)).collect();
    db.commit_each(&outbox, &events).await;
    eventually("publishes were attempted and failed", || async {
        db.count("attempts >= 2").await >= 1
    })
    .await;
    assert_eq!(got.len(), 0);
    assert_eq!(db.count("sent_at IS NULL").await, 30, "rows wait");
    assert_eq!(db.count("parked_at IS NOT NULL").await, 0, "none parked");
    let backlog = outbox.backlog(&db.pool).await.unwrap();
    assert_eq!(backlog.pending, 30);
    assert!(backlog.oldest_pending_age.is_some());

    publisher.controls.down.store(false, Ordering::SeqCst);
    got.wait_for(30).await;
    relay.shutdown().await.unwrap();
    assert_eq!(got.len(), 30, "none lost, none twice");
    for (subject, ns) in got.by_subject() {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "order of {subject}");
    }
    assert_eq!(db.count("sent_at IS NULL").await, 0);
    assert_eq!(outbox.backlog(&db.pool).await.unwrap().pending, 0);
    db.cleanup().await;
}

/// A started relay whose publisher refuses every event of subject `bad`,
/// and what group `audit` receives.
async fn relay_refusing_bad(
    db: &TestDb,
    outbox: &tessera_event_bus::outbox::Outbox,
    configure: impl FnOnce(OutboxRelay) -> OutboxRelay,
) -> (Collected, ControlledPublisher, OutboxRelayHandle) {
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let publisher = ControlledPublisher::new(Arc::new(bus.publisher()));
    *publisher.controls.reject_subject.lock().unwrap() = Some("bad".to_owned());
    let relay = configure(fast_relay(outbox, db, Arc::new(publisher.clone())))
        .start()
        .await
        .unwrap();
    (got, publisher, relay)
}

/// Events 0..n of subjects `bad` and `good`, interleaved.
fn bad_and_good(n: u32) -> Vec<Envelope<UserChanged>> {
    (0..n)
        .flat_map(|n| [event("bad", n), event("good", n)])
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_failing_subject_backs_off_without_blocking_the_others() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let (got, publisher, relay) = relay_refusing_bad(&db, &outbox, |relay| relay).await;
    db.commit_each(&outbox, &bad_and_good(10)).await;
    eventually("the good subject is through", || async {
        got.by_subject().get("good").map(Vec::len) == Some(10)
    })
    .await;
    assert!(!got.by_subject().contains_key("bad"));
    assert_eq!(db.count("subject = 'bad' AND sent_at IS NULL").await, 10);
    let last_error: Option<String> = sqlx::query_scalar(&format!(
        r#"SELECT last_error FROM "{}"."outbox" WHERE subject = 'bad' ORDER BY seq LIMIT 1"#,
        db.schema
    ))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(last_error.unwrap().contains("rejected"));

    *publisher.controls.reject_subject.lock().unwrap() = None;
    eventually("the bad subject recovers", || async {
        got.by_subject().get("bad").map(Vec::len) == Some(10)
    })
    .await;
    relay.shutdown().await.unwrap();
    assert_eq!(got.by_subject()["bad"], (0..10).collect::<Vec<_>>());
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn rows_the_broker_keeps_refusing_are_parked_after_the_set_attempts() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let (got, _publisher, relay) =
        relay_refusing_bad(&db, &outbox, |relay| relay.park_after(3)).await;
    db.commit_each(&outbox, &bad_and_good(3)).await;
    eventually("the refused rows are parked", || async {
        db.count("subject = 'bad' AND parked_at IS NOT NULL").await == 3
    })
    .await;
    got.wait_for(3).await;
    relay.shutdown().await.unwrap();
    assert_eq!(got.by_subject()["good"], [0, 1, 2]);
    assert!(!got.by_subject().contains_key("bad"));
    let parked: Vec<(i32, String)> = sqlx::query_as(&format!(
        r#"SELECT attempts, park_reason FROM "{}"."outbox" WHERE subject = 'bad' ORDER BY seq"#,
        db.schema
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (attempts, reason) in &parked {
        assert_eq!(*attempts, 2, "two failures recorded, the third parked it");
        assert!(
            reason.starts_with("gave up after 3 attempts: ") && reason.contains("rejected"),
            "{reason}"
        );
    }
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn two_relays_publish_every_event_once_in_subject_order() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let publisher = Arc::new(bus.publisher());
    let a = fast_relay(&outbox, &db, publisher.clone())
        .batch_size(5)
        .owner("relay-a")
        .start()
        .await
        .unwrap();
    let b = fast_relay(&outbox, &db, publisher)
        .batch_size(5)
        .owner("relay-b")
        .start()
        .await
        .unwrap();

    let mut writers = Vec::new();
    for s in 0..8 {
        let pool = db.pool.clone();
        let outbox = outbox.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..30 {
                let mut tx = pool.begin().await.unwrap();
                outbox
                    .enqueue(&mut tx, &event(&format!("u{s}"), n))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    got.wait_for(240).await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();

    assert_eq!(got.len(), 240, "none twice");
    for (subject, ns) in got.by_subject() {
        assert_eq!(ns, (0..30).collect::<Vec<_>>(), "order of {subject}");
    }
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn bad_rows_are_parked_with_a_reason_and_do_not_block_the_relay() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let table = format!(r#""{}"."outbox""#, db.schema);

    // Rows another producer wrote by hand, wrongly.
    let insert = format!(
        "INSERT INTO {table} (event_id, event_type, subject, attributes, data) VALUES ($1, $2, 'u1', $3::jsonb, $4)"
    );
    let bad = [
        (
            "b1",
            TYPE,
            r#"{"id":"b1","type":"com.example.user.changed.v1","subject":"u1"}"#,
            &b"{}"[..],
        ),
        (
            "b2",
            TYPE,
            r#"{"specversion":"1.0","id":"b2","source":"/x","type":"com.example.user.changed.v1","subject":"u1","datacontenttype":"application/json"}"#,
            b"{not json",
        ),
        (
            "b3",
            TYPE,
            r#"{"specversion":"1.0","id":"other","source":"/x","type":"com.example.user.changed.v1","subject":"u1"}"#,
            b"{}",
        ),
    ];
    for (id, ty, attrs, data) in bad {
        sqlx::query(&insert)
            .bind(id)
            .bind(ty)
            .bind(attrs)
            .bind(data)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    // A type no consumer group is bound to: unroutable on the bus.
    let mut attrs = Attributes::new("nobody-1", "/user-service", "com.example.nobody.v1");
    attrs.subject = Some("u1".to_owned());
    let mut tx = db.pool.begin().await.unwrap();
    outbox
        .enqueue_raw(&mut tx, &RawEvent::new(attrs, Bytes::from_static(b"{}")))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Good events of the same subject after the bad ones.
    db.commit_each(&outbox, &[event("u1", 1), event("u1", 2)])
        .await;

    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()))
        .start()
        .await
        .unwrap();
    got.wait_for(2).await;
    eventually("bad rows parked", || async {
        db.count("parked_at IS NOT NULL").await == 4
    })
    .await;
    assert_eq!(got.by_subject()["u1"], [1, 2]);

    let dead = outbox.dead_letter_queue(db.pool.clone());
    let parked = dead.list(10).await.unwrap();
    let reasons: Vec<(Option<&str>, &str)> = parked
        .iter()
        .map(|p| (p.event().map(|e| e.id()), p.reason.as_str()))
        .collect();
    assert!(
        reasons[0].1.contains("not a valid cloudevent"),
        "{reasons:?}"
    );
    assert!(
        parked[0].event.is_err(),
        "attributes without specversion are no event"
    );
    assert!(reasons[1].1.contains("not valid json"), "{reasons:?}");
    assert!(reasons[2].1.contains("disagrees"), "{reasons:?}");
    assert_eq!(reasons[3].0, Some("nobody-1"));
    assert!(reasons[3].1.contains("unroutable"), "{reasons:?}");
    assert_eq!(outbox.backlog(&db.pool).await.unwrap().parked, 4);
    let got_one = dead
        .get(&parked[2].id)
        .await
        .unwrap()
        .expect("still parked");
    assert_eq!(got_one, parked[2]);

    // Once someone listens for the unknown type, replaying publishes it.
    let late = collect(&bus, "late", &["com.example.nobody.v1"]).await;
    let replayed = dead.replay(&[parked[3].id.clone()]).await.unwrap();
    assert_eq!(replayed, 1);
    late.wait_for(1).await;
    relay.shutdown().await.unwrap();
    assert_eq!(late.ids(), ["nobody-1"]);
    assert_eq!(db.count("parked_at IS NOT NULL").await, 3);
    // A row that can never be an event is discarded; ids gone or foreign are skipped.
    let gone = [
        parked[0].id.clone(),
        parked[3].id.clone(),
        "not-a-seq".into(),
    ];
    assert_eq!(dead.discard(&gone).await.unwrap(), 1);
    assert_eq!(dead.list(10).await.unwrap().len(), 2);
    assert!(dead.get(&parked[0].id).await.unwrap().is_none());
    assert_eq!(db.count("parked_at IS NOT NULL").await, 2);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn enqueued_envelopes_carry_the_codecs_content_type() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let mut tx = db.pool.begin().await.unwrap();
    // Whatever the envelope says (even an empty value), the row says what
    // the codec wrote, as `Envelope::encode` does.
    let mut foreign = event("u1", 1);
    foreign.attributes_mut().datacontenttype = Some("text/plain".to_owned());
    let mut empty = event("u2", 2);
    empty.attributes_mut().datacontenttype = Some(String::new());
    outbox
        .enqueue_all(&mut tx, &[foreign, empty, event("u3", 3)])
        .await
        .unwrap();
    outbox.enqueue(&mut tx, &event("u4", 4)).await.unwrap();
    tx.commit().await.unwrap();
    let written: Vec<(String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT subject, attributes->>'datacontenttype' FROM {} ORDER BY seq",
        outbox.table().qualified()
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let json = Some("application/json".to_owned());
    assert_eq!(
        written,
        [
            ("u1".to_owned(), json.clone()),
            ("u2".to_owned(), json.clone()),
            ("u3".to_owned(), json.clone()),
            ("u4".to_owned(), json),
        ]
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn invalid_events_are_refused_and_write_nothing() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let mut tx = db.pool.begin().await.unwrap();
    let good = event("u1", 1)
        .encode(&tessera_event_bus::JsonCodec)
        .unwrap();
    let mut bad = good.clone();
    bad.attributes.set_extension("Not-Valid", "x");
    let err = outbox
        .enqueue_raw_all(&mut tx, &[good, bad])
        .await
        .unwrap_err();
    assert!(matches!(err, OutboxError::InvalidEvent(_)), "{err}");
    assert!(err.to_string().starts_with("invalid event"), "{err}");
    let mut empty_id = event("u1", 2);
    empty_id.attributes_mut().id = String::new();
    let err = outbox.enqueue(&mut tx, &empty_id).await.unwrap_err();
    assert!(matches!(err, OutboxError::InvalidEvent(_)), "{err}");
    outbox
        .enqueue_all::<UserChanged>(&mut tx, &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.count("true").await, 0);

    let bus = MemoryBus::new();
    let err = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(bus.publisher()))
        .lease(Duration::from_secs(1))
        .publish_timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, OutboxError::InvalidConfig(_)), "{err}");
    db.cleanup().await;
}

/// A started relay that polls once an hour, so only `NOTIFY` wakes it,
/// once it finished its first (empty) round and waits.
async fn notify_only_relay(
    outbox: &tessera_event_bus::outbox::Outbox,
    db: &TestDb,
    bus: &MemoryBus,
) -> OutboxRelayHandle {
    let relay = OutboxRelay::new(outbox, db.pool.clone(), Arc::new(bus.publisher()))
        .poll_interval(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn notify_wakes_the_relay_long_before_the_poll_interval() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let relay = notify_only_relay(&outbox, &db, &bus).await;
    db.commit_each(&outbox, &[event("u1", 1)]).await;
    got.wait_for(1).await;
    relay.shutdown().await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn shutdown_finishes_the_round_in_flight_and_prune_removes_old_sent_rows() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let events: Vec<Envelope<UserChanged>> = (0..20).map(|n| event("u1", n)).collect();
    db.commit_each(&outbox, &events).await;
    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()))
        .start()
        .await
        .unwrap();
    relay.shutdown().await.unwrap();
    // Whatever was claimed before the shutdown was published and marked:
    // nothing stays leased.
    assert_eq!(db.count("lease_owner IS NOT NULL").await, 0);
    let sent = db.count("sent_at IS NOT NULL").await;
    assert_eq!(usize::try_from(sent).unwrap(), got.len());

    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()));
    while relay.publish_pending().await.unwrap().claimed > 0 {}
    got.wait_for(20).await;
    assert_eq!(
        outbox
            .prune_sent(&db.pool, Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        outbox.prune_sent(&db.pool, Duration::ZERO).await.unwrap(),
        20
    );
    assert_eq!(db.count("true").await, 0);

    // The relay prunes on its schedule, too.
    db.commit_each(&outbox, &[event("u1", 99)]).await;
    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()))
        .retention(Duration::ZERO)
        .prune_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    eventually("sent row pruned", || async { db.count("true").await == 0 }).await;
    relay.shutdown().await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn migrations_are_idempotent_and_run_concurrently() {
    let db = TestDb::new().await;
    let outbox = db.outbox();
    let inbox = db.inbox();
    let runs = (0..4).map(|_| {
        let (outbox, inbox, pool) = (outbox.clone(), inbox.clone(), db.pool.clone());
        tokio::spawn(async move {
            outbox.migrate(&pool).await.unwrap();
            inbox.migrate().await.unwrap();
        })
    });
    for run in runs.collect::<Vec<_>>() {
        run.await.unwrap();
    }
    outbox.migrate(&db.pool).await.unwrap();
    assert!(
        outbox
            .migration_sql()
            .contains(&format!(r#""{}"."outbox""#, db.schema))
    );
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn rows_committed_out_of_seq_order_are_published_at_the_next_wake_up() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    // NOTIFY only: a row skipped by a claim would wait an hour.
    let relay = notify_only_relay(&outbox, &db, &bus).await;

    // The first transaction takes the lower seq and commits last: the
    // relay sees a gap, then the gap fills.
    let mut early = db.pool.begin().await.unwrap();
    outbox.enqueue(&mut early, &event("a", 1)).await.unwrap();
    db.commit_each(&outbox, &[event("b", 1), event("c", 1)])
        .await;
    got.wait_for(2).await;
    assert!(!got.by_subject().contains_key("a"));
    early.commit().await.unwrap();
    got.wait_for(3).await;
    // And the relay goes on after the gap.
    db.commit_each(&outbox, &[event("b", 2)]).await;
    got.wait_for(4).await;
    relay.shutdown().await.unwrap();
    let seqs: Vec<i64> = sqlx::query_scalar(&format!(
        r#"SELECT seq FROM "{}"."outbox" WHERE subject = 'a'"#,
        db.schema
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(seqs, [1], "the late row had the lowest seq");
    assert_eq!(got.len(), 4, "none twice");
    assert_eq!(db.count("sent_at IS NULL").await, 0);
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn pruning_runs_beside_a_busy_relay_without_holding_it_up() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let got = collect(&bus, "audit", &[TYPE]).await;
    let events: Vec<_> = (0..3000)
        .map(|n| event(&format!("u{}", n % 7), n))
        .collect();
    for chunk in events.chunks(500) {
        let mut tx = db.pool.begin().await.unwrap();
        outbox.enqueue_all(&mut tx, chunk).await.unwrap();
        tx.commit().await.unwrap();
    }
    // Sent rows are pruned as soon as they are marked, all the time.
    let relay = fast_relay(&outbox, &db, Arc::new(bus.publisher()))
        .batch_size(50)
        .retention(Duration::ZERO)
        .prune_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    got.wait_for(3000).await;
    eventually("every sent row pruned", || async {
        db.count("true").await == 0
    })
    .await;
    relay.shutdown().await.unwrap();
    assert_eq!(got.len(), 3000, "none twice");
    for (subject, ns) in got.by_subject() {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "order of {subject}");
    }
    db.cleanup().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_relay_killed_mid_pipeline_republishes_only_the_unconfirmed_rows() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let bus = MemoryBus::new();
    let wire = collect(&bus, "wire-tap", &[TYPE]).await;
    // Subject `held`: its rows reach the broker, their confirms never come.
    let events: Vec<_> = (0..30)
        .map(|n| {
            let subject = if n % 10 == 3 {
                "held".to_owned()
            } else {
                format!("u{}", n % 3)
            };
            event(&subject, n)
        })
        .collect();
    db.commit_each(&outbox, &events).await;
    let publisher = ControlledPublisher::new(Arc::new(bus.publisher()));
    *publisher.controls.hold_subject.lock().unwrap() = Some("held".to_owned());
    // Batches of one row: every row has its own confirm in flight.
    let doomed = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(publisher.clone()))
        .batch_size(1)
        .lease(Duration::from_secs(3))
        .publish_timeout(Duration::from_millis(2500))
        .start()
        .await
        .unwrap();
    eventually("every confirmed row is marked", || async {
        db.count("sent_at IS NOT NULL").await == 27
    })
    .await;
    wire.wait_for(30).await;
    doomed.abort();
    assert_eq!(
        db.count("sent_at IS NULL").await,
        3,
        "the held rows stay unmarked"
    );

    // Once the lease expired, another relay publishes the held rows again, and only them.
    let relay = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(bus.publisher()))
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    wire.wait_for(33).await;
    eventually("every row marked", || async {
        db.count("sent_at IS NULL").await == 0
    })
    .await;
    relay.shutdown().await.unwrap();
    let ids = wire.ids();
    let again: Vec<&String> = ids[30..].iter().collect();
    let held: Vec<String> = events
        .iter()
        .filter(|e| e.data().user_id == "held")
        .map(|e| e.id().to_owned())
        .collect();
    assert_eq!(
        again,
        held.iter().collect::<Vec<_>>(),
        "only the unconfirmed rows again"
    );
    assert_eq!(wire.len(), 33, "nothing lost, nothing else twice");
    assert_eq!(wire.by_subject()["held"], [3, 13, 23, 3, 13, 23]);
    db.cleanup().await;
}
