//! Every endpoint of a list down at once, then one back: the bus backs off
//! and says so in its health, the outbox keeps what is committed meanwhile,
//! and everything goes out once an endpoint answers again. The endpoints
//! are three TCP proxies in front of the broker at `AMQP_URL`, one
//! black-holed and two refusing, so the test needs only one broker;
//! PostgreSQL from `DATABASE_URL`.
#![cfg(all(feature = "rabbitmq", feature = "postgres", feature = "testkit"))]
// The connection attempts counted are part of the output.
#![allow(clippy::print_stdout)]

mod common;

use std::{collections::HashSet, sync::Arc, time::Duration};

use common::{
    outbox::{TYPE, TestDb, UserChanged, event},
    rabbitmq::{PATIENCE, Proxy, config, unique, wait_until_up},
};
use tessera_event_bus::{
    HealthStatus, SubscribeOptions, Subscriber, outbox::OutboxRelay, rabbitmq::RabbitBus,
};
use tokio::time::Instant;

async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn with_every_endpoint_down_the_outbox_keeps_its_rows_and_publishes_them_when_one_returns() {
    let proxies = [
        Proxy::plain().await,
        Proxy::plain().await,
        Proxy::plain().await,
    ];
    let urls: Vec<String> = proxies.iter().map(|p| p.url("127.0.0.1")).collect();
    let name = unique("tessera-outage");
    let bus = RabbitBus::connect(
        config(urls[0].clone(), &name)
            .endpoints(urls.clone())
            .connect_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new(unique("outage")).event_type(TYPE))
        .await
        .unwrap();
    let received = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let consumer = tokio::spawn({
        let received = Arc::clone(&received);
        async move {
            while let Ok(Some(delivery)) = sub.next().await {
                let data: UserChanged = serde_json::from_slice(&delivery.event().data).unwrap();
                if delivery.ack().await.is_ok() {
                    received.lock().unwrap().insert(data.n);
                }
            }
        }
    });
    let db = TestDb::new().await;
    let outbox = db.migrated_outbox().await;
    let relay = OutboxRelay::new(&outbox, db.pool.clone(), Arc::new(bus.publisher()))
        .poll_interval(Duration::from_millis(20))
        .publish_timeout(Duration::from_secs(2))
        .lease(Duration::from_secs(5))
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let commit = async |range: std::ops::RangeInclusive<u32>| {
        let events: Vec<_> = range.map(|n| event(&format!("s{}", n % 4), n)).collect();
        db.commit_each(&outbox, &events).await;
    };
    let received_all = |upto: u32| {
        let received = Arc::clone(&received);
        move || std::future::ready((1..=upto).all(|n| received.lock().unwrap().contains(&n)))
    };
    commit(1..=20).await;
    eventually("the first 20 events received", received_all(20)).await;

    // Every endpoint goes down: one never answers, two close at once.
    proxies[0].refuse(true);
    proxies[1].black_hole(true);
    proxies[2].refuse(true);
    for proxy in &proxies {
        proxy.cut_connections();
    }
    commit(21..=50).await;
    // The bus keeps trying every endpoint, with backoff, and says so.
    eventually("several rounds over every endpoint", || {
        std::future::ready(
            proxies[0].refused() >= 3 && proxies[1].held() >= 3 && proxies[2].refused() >= 3,
        )
    })
    .await;
    let health = bus.health();
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    let detail = health.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("no broker endpoint reachable (3 of 3 tried)"),
        "{detail}"
    );
    for proxy in &proxies {
        assert!(
            detail.contains(&format!("127.0.0.1:{}", proxy.port)),
            "{detail} names every endpoint"
        );
    }
    assert!(!detail.contains("guest"), "no credentials in {detail}");
    // Nothing committed during the outage is lost or parked: it waits.
    assert_eq!(db.count("parked_at IS NOT NULL").await, 0, "nothing parked");
    assert!(
        db.count("sent_at IS NULL").await >= 30,
        "the outage's rows wait in the outbox"
    );

    // One endpoint comes back: everything goes out through it.
    proxies[1].black_hole(false);
    wait_until_up(&bus).await;
    let detail = bus.health().detail.unwrap_or_default();
    assert!(
        detail.contains(&format!("127.0.0.1:{}", proxies[1].port)),
        "the health names the endpoint in use: {detail}"
    );
    eventually("every event received", received_all(50)).await;
    eventually("every row marked sent", || async {
        db.count("sent_at IS NULL").await == 0
    })
    .await;
    assert_eq!(db.count("parked_at IS NOT NULL").await, 0, "nothing parked");
    println!(
        "all endpoints down: refused {} + {} connections, black-holed {}; 50 events received",
        proxies[0].refused(),
        proxies[2].refused(),
        proxies[1].held()
    );
    relay.shutdown().await.unwrap();
    consumer.abort();
    bus.close().await;
    db.cleanup().await;
}
