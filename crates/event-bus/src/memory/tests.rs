use std::time::Duration;

use bytes::Bytes;

use std::sync::Arc;

use super::*;
use crate::{
    Attributes, BusError, Delivery, Publisher, RawEvent, SubscribeOptions, Subscriber, Subscription,
};

const TY: &str = "com.example.thing.v1";

fn event(id: &str) -> RawEvent {
    RawEvent::new(Attributes::new(id, "/test", TY), Bytes::from_static(b"{}"))
}

async fn member(bus: &MemoryBus, group: &str) -> Box<dyn Subscription> {
    bus.subscriber()
        .subscribe(SubscribeOptions::new(group).event_type(TY))
        .await
        .unwrap()
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("a delivery in time")
        .unwrap()
        .expect("subscription open")
}

#[tokio::test]
async fn publishing_to_a_type_no_group_binds_is_unroutable() {
    let bus = MemoryBus::new();
    let err = bus.publisher().publish(event("1")).await.unwrap_err();
    assert!(
        matches!(err, BusError::Unroutable(ref t) if t == TY),
        "{err}"
    );

    let lenient = MemoryBus::with_config(MemoryConfig::default().drop_unroutable_events_silently());
    lenient.publisher().publish(event("1")).await.unwrap();
}

#[tokio::test]
async fn invalid_attributes_are_refused_before_enqueueing() {
    let bus = MemoryBus::new();
    let _sub = member(&bus, "g").await;
    let mut bad = event("1");
    bad.attributes.id.clear();
    let err = bus.publisher().publish(bad).await.unwrap_err();
    assert!(matches!(err, BusError::InvalidEvent(_)), "{err}");
    assert_eq!(bus.queued("g"), 0);
}

#[tokio::test]
async fn publish_waits_for_room_when_a_queue_is_full() {
    let bus = MemoryBus::with_config(MemoryConfig::default().queue_capacity(2));
    let mut sub = member(&bus, "g").await;
    let publisher = Arc::new(bus.publisher());
    publisher.publish(event("1")).await.unwrap();
    publisher.publish(event("2")).await.unwrap();

    let blocked = tokio::spawn({
        let publisher = Arc::clone(&publisher);
        async move { publisher.publish(event("3")).await }
    });
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !blocked.is_finished(),
        "publish must wait while the queue is full"
    );
    assert_eq!(bus.queued("g"), 2);

    next(&mut sub).await.ack().await.unwrap();
    tokio::time::timeout(PATIENCE, blocked)
        .await
        .expect("publish resumes once there is room")
        .unwrap()
        .unwrap();
    assert_eq!(bus.queued("g"), 2);
}

#[tokio::test]
async fn publishes_that_wait_for_room_go_in_in_the_order_they_began() {
    use futures_util::FutureExt as _;

    let bus = MemoryBus::with_config(MemoryConfig::default().queue_capacity(1));
    let mut sub = member(&bus, "g").await;
    let publisher = Arc::new(bus.publisher());
    publisher.publish(event("0")).await.unwrap();
    // "1" finds the queue full and waits in line.
    let waiting = tokio::spawn({
        let publisher = Arc::clone(&publisher);
        async move { publisher.publish(event("1")).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "the queue is full");
    // Room appears; before "1" gets to run, another publish begins: it must
    // not overtake "1" (this runtime has one thread: "1" has not run yet).
    next(&mut sub).await.ack().await.unwrap();
    assert!(
        publisher.publish(event("2")).now_or_never().is_none(),
        "a publish that begins while another waits goes behind it"
    );
    // That publish was given up (its future dropped): the line goes on.
    let later = tokio::spawn({
        let publisher = Arc::clone(&publisher);
        async move { publisher.publish(event("3")).await }
    });
    for expected in ["1", "3"] {
        let d = next(&mut sub).await;
        assert_eq!(d.event().id(), expected);
        d.ack().await.unwrap();
    }
    waiting.await.unwrap().unwrap();
    later.await.unwrap().unwrap();
    assert_eq!(
        bus.queued("g"),
        0,
        "the given-up publish left nothing behind"
    );
}

#[tokio::test]
async fn closing_the_publisher_fails_a_publish_waiting_for_room() {
    let bus = MemoryBus::with_config(MemoryConfig::default().queue_capacity(1));
    let _sub = member(&bus, "g").await;
    let publisher = Arc::new(bus.publisher());
    publisher.publish(event("1")).await.unwrap();
    let blocked = tokio::spawn({
        let publisher = Arc::clone(&publisher);
        async move { publisher.publish(event("2")).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    publisher.close().await.unwrap();
    let result = tokio::time::timeout(PATIENCE, blocked)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(BusError::Closed)));
    assert!(!publisher.health().is_up());
}

#[tokio::test]
async fn a_dropped_delivery_is_redelivered_first_with_a_higher_attempt() {
    let bus = MemoryBus::new();
    let mut sub = member(&bus, "g").await;
    let p = bus.publisher();
    p.publish(event("1")).await.unwrap();
    p.publish(event("2")).await.unwrap();
    let first = next(&mut sub).await;
    assert_eq!((first.event().id(), first.attempt()), ("1", 1));
    assert_eq!(bus.in_flight("g"), 1);
    drop(first);
    assert_eq!(bus.in_flight("g"), 0);
    let again = next(&mut sub).await;
    assert_eq!((again.event().id(), again.attempt()), ("1", 2));
}

#[tokio::test]
async fn delayed_retry_comes_back_after_the_delay() {
    tokio::time::pause();
    let bus = MemoryBus::new();
    let mut sub = member(&bus, "g").await;
    bus.publisher().publish(event("1")).await.unwrap();
    next(&mut sub)
        .await
        .retry_after(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        bus.queued("g"),
        1,
        "a delayed event counts against the queue"
    );
    let early = tokio::time::timeout(Duration::from_secs(59), sub.next()).await;
    assert!(early.is_err(), "not redelivered before the delay");
    let d = next(&mut sub).await;
    assert_eq!((d.event().id(), d.attempt()), ("1", 2));
}

#[tokio::test]
async fn delivery_limit_dead_letters_instead_of_looping() {
    let bus = MemoryBus::with_config(MemoryConfig::default().max_deliveries(2));
    let mut sub = member(&bus, "g").await;
    let p = bus.publisher();
    p.publish(event("poison")).await.unwrap();
    p.publish(event("fine")).await.unwrap();
    next(&mut sub).await.nack().await.unwrap();
    next(&mut sub).await.nack().await.unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event().id(), "fine");
    let dead = bus.dead_letters("g");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event().unwrap().id(), "poison");
    assert_eq!(dead[0].deliveries, 2);
    assert_eq!(dead[0].reason, "delivery limit of 2 reached");
    assert_eq!(bus.take_dead_letters("g").len(), 1);
    assert!(bus.dead_letters("g").is_empty());
}

#[tokio::test]
async fn closing_the_subscriber_ends_waiting_subscriptions() {
    let bus = MemoryBus::new();
    let subscriber = bus.subscriber();
    let mut sub = subscriber
        .subscribe(SubscribeOptions::new("g").event_type(TY))
        .await
        .unwrap();
    let waiting = tokio::spawn(async move { sub.next().await.map(|d| d.is_some()) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    subscriber.close().await.unwrap();
    subscriber.close().await.unwrap();
    let got = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(got, Ok(false)));
    assert!(!subscriber.health().is_up());
    let err = subscriber
        .subscribe(SubscribeOptions::new("g").event_type(TY))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Closed));
}

#[tokio::test]
async fn topic_patterns_bind_groups_to_many_types() {
    let bus = MemoryBus::new();
    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("audit").event_type("com.example.#"))
        .await
        .unwrap();
    bus.publisher().publish(event("1")).await.unwrap();
    assert_eq!(next(&mut sub).await.event().id(), "1");
}

#[tokio::test]
async fn settling_after_the_subscription_closed_still_counts() {
    let bus = MemoryBus::new();
    let mut sub = member(&bus, "g").await;
    bus.publisher().publish(event("1")).await.unwrap();
    let d = next(&mut sub).await;
    sub.close().await.unwrap();
    d.ack().await.unwrap();
    drop(d);
    assert_eq!(bus.queued("g") + bus.in_flight("g"), 0);
}

#[tokio::test]
async fn try_next_takes_what_is_ready_without_waiting() {
    let bus = MemoryBus::new();
    let mut sub = member(&bus, "g").await;
    assert!(sub.try_next().is_none(), "nothing published yet");
    let publisher = bus.publisher();
    for id in ["1", "2"] {
        publisher.publish(event(id)).await.unwrap();
    }
    let first = sub.try_next().expect("ready");
    assert_eq!(first.event().id(), "1");
    assert_eq!(bus.in_flight("g"), 1);
    first.ack().await.unwrap();
    // `try_next` and `next` take from the same queue, in order.
    let second = next(&mut sub).await;
    assert_eq!(second.event().id(), "2");
    second.ack().await.unwrap();
    assert!(sub.try_next().is_none());
    publisher.publish(event("3")).await.unwrap();
    sub.close().await.unwrap();
    assert!(
        sub.try_next().is_none(),
        "a closed subscription takes nothing"
    );
    assert_eq!(bus.queued("g"), 1, "what was not taken stays queued");
}
