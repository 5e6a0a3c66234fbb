//! An idle RabbitMQ subscription sleeps: it must not spin, even after the
//! `RabbitSubscriber` that opened it was dropped (a `Router` keeps only its
//! subscription). Alone in its own test binary, so the process CPU time
//! measured here is this test's.
#![cfg(all(feature = "rabbitmq", feature = "testkit"))]

use std::time::Duration;

use bytes::Bytes;
use tessera_event_bus::{
    Attributes, Publisher, RawEvent, SubscribeOptions, Subscriber,
    rabbitmq::{RabbitBus, RabbitConfig},
    testkit::amqp_url,
};

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("procfs");
    // Fields after the command name (which is in parentheses): utime is the 14th field overall.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel reports in USER_HZ, 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ"]
async fn an_idle_subscription_whose_subscriber_was_dropped_does_not_spin() {
    let name = format!("tessera-idle-{}", uuid::Uuid::new_v4().simple());
    let config = RabbitConfig::new(amqp_url())
        .exchange(format!("{name}.events"))
        .connection_name(name.clone())
        .temporary_topology(Duration::from_secs(30));
    let bus = RabbitBus::connect(config).await.expect("broker");
    let subscriber = bus.subscriber();
    let mut sub = subscriber
        .subscribe(SubscribeOptions::new(format!("{name}.group")).event_type("test.idle.v1"))
        .await
        .expect("subscribe");
    drop(subscriber);

    let waiting = tokio::spawn(async move {
        let delivery = sub.next().await;
        (sub, delivery)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = cpu_time() - before;
    assert!(
        spent < Duration::from_millis(500),
        "an idle subscription used {spent:?} of CPU in 2 s: it is polling in a loop"
    );
    assert!(!waiting.is_finished(), "next() returned without an event");

    // Still consuming: an event published now arrives.
    let attrs = Attributes::new("idle-1", "/tests", "test.idle.v1");
    bus.publisher()
        .publish(RawEvent::new(attrs, Bytes::from_static(b"{}")))
        .await
        .expect("publish");
    let (mut sub, delivery) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the event arrives")
        .expect("no panic");
    let delivery = delivery.expect("no error").expect("a delivery");
    assert_eq!(delivery.event().id(), "idle-1");
    delivery.ack().await.expect("ack");

    // Closing the bus ends the subscription.
    bus.close().await;
    let end = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("next returns once the bus is closed");
    assert!(matches!(end, Ok(None)), "{end:?}");
}
