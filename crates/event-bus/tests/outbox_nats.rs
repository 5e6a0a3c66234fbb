//! The outbox relay, unchanged, on NATS JetStream: rows committed in
//! PostgreSQL (`DATABASE_URL`) are published to a `NatsBus` (`NATS_URL`)
//! and a consumer group receives each of them once, in order per subject.
#![cfg(all(feature = "postgres", feature = "nats", feature = "testkit"))]

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::outbox::*;
use tessera_event_bus::{
    Delivery, EventPublisher, SubscribeOptions, Subscriber, Subscription, outbox::OutboxRelay,
    testkit::NatsTestBackend,
};

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("a delivery within 30 s")
        .expect("subscription works")
        .expect("subscription open")
}

#[tokio::test]
#[ignore = "needs PostgreSQL and NATS"]
async fn relay_drains_the_outbox_to_nats_and_the_group_gets_each_event_once() {
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let backend = NatsTestBackend::new().await;
    let bus = backend.bus();
    // Bind the group first: its consumer delivers what is published from now on.
    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("comments").event_type(TYPE))
        .await
        .unwrap();

    let events: Vec<_> = (0..60).map(|n| event(&format!("u{}", n % 4), n)).collect();
    db.commit_each(&outbox, &events).await;
    let relay = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(bus.publisher()))
        .poll_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();

    let mut seen: HashMap<String, Vec<u32>> = HashMap::new();
    let mut ids = Vec::new();
    for _ in 0..events.len() {
        let delivery = next(&mut sub).await;
        let data: UserChanged = serde_json::from_slice(&delivery.event().data).unwrap();
        assert_eq!(delivery.event().subject(), Some(data.user_id.as_str()));
        seen.entry(data.user_id).or_default().push(data.n);
        ids.push(delivery.event().id().to_owned());
        delivery.ack().await.unwrap();
    }
    eventually("every row marked sent", || async {
        db.count("sent_at IS NOT NULL").await == 60
    })
    .await;
    relay.shutdown().await.unwrap();

    // Each event once: the ids are the outbox's, none twice.
    let mut expected: Vec<_> = events.iter().map(|e| e.id().to_owned()).collect();
    expected.sort_unstable();
    ids.sort_unstable();
    assert_eq!(ids, expected);
    // In order per subject.
    for (user, ns) in &seen {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, &sorted, "order of {user}");
        assert_eq!(ns.len(), 15, "{user}");
    }
    // Nothing else is on its way: an event published after the relay
    // stopped is the very next delivery.
    let marker = event("marker", 999);
    EventPublisher::new(Arc::new(bus.publisher()), "/user-service")
        .publish_envelope(&marker)
        .await
        .unwrap();
    let delivery = next(&mut sub).await;
    assert_eq!(delivery.event().id(), marker.id());
    delivery.ack().await.unwrap();

    sub.close().await.unwrap();
    db.cleanup().await;
}
