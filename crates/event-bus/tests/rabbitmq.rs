//! RabbitMQ backend behaviour beyond the conformance kit: the wire mapping on
//! the broker, bad input, quorum queues, recovery and health.
#![cfg(all(feature = "rabbitmq", feature = "testkit"))]

mod common;

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use common::rabbitmq::{
    PATIENCE, Ping, Proxy, assert_connect_gives_up, config, event, member, parked_at_least,
    parking_lot, ping_router, unique, wait_until_up,
};
use lapin::{
    BasicProperties,
    options::{BasicGetOptions, BasicPublishOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    BusError, DeadLetterQueue, Envelope, EventContext, EventPublisher, HealthStatus, Publisher,
    RawEvent, Router, SubscribeOptions, Subscriber, Subscription,
    rabbitmq::{QueueType, RabbitBus, RabbitConfig},
    testkit::{RabbitTestBackend, amqp_url},
};

async fn next(sub: &mut Box<dyn Subscription>) -> tessera_event_bus::Delivery {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("a delivery in time")
        .expect("the subscription works")
        .expect("the subscription is open")
}

async fn raw_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    (conn, channel)
}

/// Publishes anything, garbage included, to the bus's exchange with one
/// event type as routing key, on its own connection and confirmed, so
/// messages reach the queue in the order sent.
struct RawSender {
    _conn: lapin::Connection,
    channel: lapin::Channel,
    exchange: ShortString,
    routing_key: &'static str,
}

impl RawSender {
    async fn new(bus: &RabbitBus, routing_key: &'static str) -> Self {
        let (conn, channel) = raw_channel().await;
        channel.confirm_select(Default::default()).await.unwrap();
        Self {
            _conn: conn,
            channel,
            exchange: bus.exchange().into(),
            routing_key,
        }
    }

    async fn send(&self, props: BasicProperties, body: &[u8]) {
        self.channel
            .basic_publish(
                self.exchange.clone(),
                self.routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// A valid event, in the binary mode of the wire format.
    async fn send_event(&self, event: &RawEvent) {
        let message = tessera_event_bus::wire::to_binary(event);
        let mut headers = FieldTable::default();
        for (name, value) in &message.headers {
            headers.insert(
                name.as_str().into(),
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
        let mut props = BasicProperties::default().with_headers(headers);
        if let Some(ct) = &message.content_type {
            props = props.with_content_type(ct.as_str().into());
        }
        self.send(props, &message.body).await;
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error() {
    let config = RabbitConfig::new("amqp://guest:guest@127.0.0.1:1/%2f");
    let err = RabbitBus::connect(config).await.unwrap_err();
    assert!(matches!(err, BusError::Connection(_)), "{err}");
    assert!(
        err.to_string().starts_with("broker connection failed"),
        "{err}"
    );
    let err = RabbitBus::connect(RabbitConfig::new("not a url"))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Connection(_)), "{err}");
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn an_unroutable_event_is_an_error() {
    let backend = RabbitTestBackend::new().await;
    // Bind one group so the exchange has a binding, then publish another type.
    let sub = backend.bus().subscriber();
    let _s = sub
        .subscribe(SubscribeOptions::new(unique("bound")).event_type("tessera.test.bound.v1"))
        .await
        .unwrap();
    let err = backend
        .bus()
        .publisher()
        .publish(event("tessera.test.nobody.v1", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::Unroutable(t) if t == "tessera.test.nobody.v1"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn messages_carry_the_amqp_properties_of_the_wire_format() {
    let backend = RabbitTestBackend::new().await;
    let (group, ty) = (unique("props"), "tessera.test.props.v1");
    let mut binding = member(backend.bus(), &group, ty).await;
    binding.close().await.unwrap();
    let mut e = event(ty, 1);
    e.attributes.subject = Some("u-1".to_owned());
    backend.bus().publisher().publish(e.clone()).await.unwrap();

    let (_conn, channel) = raw_channel().await;
    let got = channel
        .basic_get(group.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is in the group's queue");
    let d = got.delivery;
    assert_eq!(d.exchange.as_str(), backend.bus().exchange());
    assert_eq!(d.routing_key.as_str(), ty, "routing key = event type");
    let p = &d.properties;
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(
        p.message_id().as_ref().map(ShortString::as_str),
        Some(e.id())
    );
    assert_eq!(p.kind().as_ref().map(ShortString::as_str), Some(ty));
    assert_eq!(
        p.content_type().as_ref().map(ShortString::as_str),
        Some("application/json")
    );
    let secs = e.attributes.time.unwrap().unix_timestamp() as u64;
    assert_eq!(p.timestamp(), &Some(secs));
    let headers = p.headers().as_ref().unwrap();
    let header = |n: &str| match headers.inner().get(n) {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8(s.as_bytes().to_vec()).unwrap()),
        _ => None,
    };
    assert_eq!(header("ce-specversion").as_deref(), Some("1.0"));
    assert_eq!(header("ce-id").as_deref(), Some(e.id()));
    assert_eq!(header("ce-source").as_deref(), Some("/tests"));
    assert_eq!(header("ce-type").as_deref(), Some(ty));
    assert_eq!(header("ce-subject").as_deref(), Some("u-1"));
    assert!(header("ce-time").is_some());
    assert_eq!(&d.data[..], &e.data[..]);
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn garbage_messages_are_parked_with_the_reason_and_consumption_goes_on() {
    let backend = RabbitTestBackend::new().await;
    let (group, ty) = (unique("garbage"), "tessera.test.garbage.v1");
    let mut sub = member(backend.bus(), &group, ty).await;

    let raw = RawSender::new(backend.bus(), ty).await;
    let publish = |props: BasicProperties, body: &'static [u8]| raw.send(props, body);
    // No headers at all.
    publish(BasicProperties::default(), b"\x00\xffnot an event").await;
    // A CloudEvent with a broken time and a header that is not a string.
    let mut headers = FieldTable::default();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "bad-1"),
        ("ce-source", "/x"),
        ("ce-type", ty),
        ("ce-time", "yesterday"),
    ] {
        headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
    }
    publish(
        BasicProperties::default().with_headers(headers.clone()),
        b"{}",
    )
    .await;
    headers.insert(
        "ce-time".into(),
        AMQPValue::FieldTable(FieldTable::default()),
    );
    publish(BasicProperties::default().with_headers(headers), b"{}").await;
    // Then a good one.
    let good = event(ty, 1);
    backend
        .bus()
        .publisher()
        .publish(good.clone())
        .await
        .unwrap();

    let d = next(&mut sub).await;
    assert_eq!(d.event(), &good, "garbage never reaches the caller");
    d.ack().await.unwrap();

    // The garbage went out on another connection than the good event, so
    // the broker may have queued the last of it after the good one.
    let parked = parked_at_least(backend.bus(), &group, 3).await;
    assert_eq!(parked.len(), 3, "{parked:?}");
    assert!(parked.iter().all(|p| p.event.is_err()));
    assert!(
        parked[0].reason.starts_with("invalid cloudevent: "),
        "{}",
        parked[0].reason
    );
    assert!(
        parked[0].reason.contains("specversion"),
        "{}",
        parked[0].reason
    );
    assert!(
        parked[1].reason.contains("not an rfc 3339 timestamp"),
        "{}",
        parked[1].reason
    );
    assert!(
        parked[2]
            .reason
            .contains("header `ce-time` is not a string"),
        "{}",
        parked[2].reason
    );
    assert_eq!(
        &parked[0].event.as_ref().unwrap_err().body[..],
        b"\x00\xffnot an event",
        "the body is kept as it was"
    );
    // Peeking left them there.
    assert_eq!(parking_lot(backend.bus(), &group).await.len(), 3);
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn try_next_hands_over_received_events_and_leaves_garbage_to_next() {
    let backend = RabbitTestBackend::new().await;
    let (group, ty) = (unique("try-next"), "tessera.test.try-next.v1");
    let mut sub = member(backend.bus(), &group, ty).await;
    assert!(sub.try_next().is_none(), "nothing published yet");

    // Good, garbage, good: in this order on one channel, so in the queue.
    let raw = RawSender::new(backend.bus(), ty).await;
    let (first, last) = (event(ty, 1), event(ty, 2));
    raw.send_event(&first).await;
    raw.send(BasicProperties::default(), b"\x00not an event")
        .await;
    raw.send_event(&last).await;

    // Received by lapin: taken without waiting.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let d = loop {
        if let Some(d) = sub.try_next() {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first event arrives"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(d.event(), &first);
    d.ack().await.unwrap();
    // The garbage is next in line: `try_next` takes it but cannot park it
    // without waiting, so it hands over nothing, not even the event behind it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sub.try_next().is_none());
    assert!(sub.try_next().is_none());
    // `next` parks the garbage, then hands over the last event.
    let d = next(&mut sub).await;
    assert_eq!(d.event(), &last, "garbage never reaches the caller");
    d.ack().await.unwrap();
    let parked = parking_lot(backend.bus(), &group).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        &parked[0].event.as_ref().unwrap_err().body[..],
        b"\x00not an event"
    );
    // No event id: the dead letter is named by a digest of its body, and
    // can be discarded by it.
    assert!(
        parked[0].id.as_str().starts_with("sha256:"),
        "{}",
        parked[0].id
    );
    let queue = backend.bus().dead_letter_queue(&group);
    assert_eq!(queue.discard(&[parked[0].id.clone()]).await.unwrap(), 1);
    assert!(queue.list(10).await.unwrap().is_empty());
    sub.close().await.unwrap();
    assert!(sub.try_next().is_none(), "closed");
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn quorum_queues_park_a_message_over_the_delivery_limit() {
    let backend =
        RabbitTestBackend::with_config(|c| c.queue_type(QueueType::Quorum { delivery_limit: 2 }))
            .await;
    let (group, ty) = (unique("quorum"), "tessera.test.quorum.v1");
    let mut sub = member(backend.bus(), &group, ty).await;
    let e = event(ty, 1);
    backend.bus().publisher().publish(e.clone()).await.unwrap();
    for attempt in 1..=3 {
        let d = next(&mut sub).await;
        assert_eq!(d.event().id(), e.id());
        assert_eq!(d.attempt(), attempt, "x-delivery-count counts the returns");
        d.nack().await.unwrap();
    }
    let parked = parked_at_least(backend.bus(), &group, 1).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].event.as_ref().unwrap().id(), e.id());
    assert!(
        parked[0].reason.contains("delivery_limit"),
        "{}",
        parked[0].reason
    );
    sub.close().await.unwrap();
    // The queue is a quorum queue; delete it explicitly (quorum queues cannot auto-delete).
    let (_conn, channel) = raw_channel().await;
    for q in [group.clone(), format!("{group}.parking-lot")] {
        let _ = channel
            .queue_delete(q.as_str().into(), Default::default())
            .await;
    }
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn pipelined_publishes_survive_a_forced_close_and_nothing_confirmed_is_lost() {
    let backend = RabbitTestBackend::new().await;
    let (group, ty) = (unique("pipelined"), "tessera.test.pipelined.v1");
    let mut sub = member(backend.bus(), &group, ty).await;
    let publisher = Arc::new(backend.bus().publisher());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Publish batches of pipelined publishes until the connections were
    // force-closed, so some are in flight at the drop.
    let publishing = {
        let (publisher, stop) = (Arc::clone(&publisher), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut ids = HashSet::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let batch: Vec<_> = (0..100).map(|i| event(ty, n + i)).collect();
                n += 100;
                ids.extend(batch.iter().map(|e| e.id().to_owned()));
                publisher
                    .publish_all(batch)
                    .await
                    .expect("publishes in flight at the drop are retried on the new connection");
            }
            ids
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    backend.force_close_connections().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut expected = publishing.await.unwrap();
    assert!(expected.len() > 100);
    while !expected.is_empty() {
        let d = next(&mut sub).await;
        expected.remove(d.event().id());
        let _ = d.ack().await;
    }
    wait_until_up(backend.bus()).await;
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn a_router_keeps_consuming_after_a_forced_close() {
    let backend = RabbitTestBackend::new().await;
    let (router, mut rx) = ping_router(backend.bus(), unique("router")).await;
    let events = EventPublisher::new(Arc::new(backend.bus().publisher()), "/tests");
    events.publish(Ping { n: 1 }).await.unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap(),
        Some(1)
    );

    backend.force_close_connections().await;
    events.publish(Ping { n: 2 }).await.unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&2) {
        seen.push(
            tokio::time::timeout(PATIENCE, rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert!(router.health().is_up());
    router.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn a_closed_bus_is_down_and_refuses_work() {
    let backend = RabbitTestBackend::new().await;
    let bus = backend.bus().clone();
    assert!(bus.health().is_up());
    let publisher = bus.publisher();
    let subscriber = bus.subscriber();
    bus.close().await;
    bus.close().await;
    assert_eq!(bus.health().status, HealthStatus::Down);
    assert!(matches!(
        publisher.publish(event("tessera.test.closed.v1", 1)).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        subscriber
            .subscribe(SubscribeOptions::new(unique("closed")).event_type("t"))
            .await,
        Err(BusError::Closed)
    ));
    assert_eq!(publisher.health().status, HealthStatus::Down);
    // Nothing was ever bound to this exchange, so it would not auto-delete.
    let (_conn, channel) = raw_channel().await;
    channel
        .exchange_delete(bus.exchange().into(), Default::default())
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn grouped_acks_never_cover_a_nacked_delivery_nor_stall_the_prefetch_window() {
    let backend = RabbitTestBackend::new().await;
    let (group, ty) = (unique("acks"), "tessera.test.acks.v1");
    let subscriber = backend.bus().subscriber();
    let mut sub = subscriber
        .subscribe(SubscribeOptions::new(&group).event_type(ty).prefetch(2))
        .await
        .unwrap();
    let publisher = backend.bus().publisher();
    let events: Vec<_> = (0..4).map(|n| event(ty, n)).collect();
    publisher.publish_all(events.clone()).await.unwrap();

    // A slow handler holds the first delivery; acks behind it still free the window.
    let held = next(&mut sub).await;
    assert_eq!(held.event().id(), events[0].id());
    let second = next(&mut sub).await;
    second.ack().await.unwrap();
    let third = next(&mut sub).await;
    assert_eq!(third.event().id(), events[2].id(), "the window moved on");
    third.ack().await.unwrap();
    let fourth = next(&mut sub).await;
    // Nack the held one after later acks: it alone comes back.
    held.nack().await.unwrap();
    fourth.ack().await.unwrap();
    let again = next(&mut sub).await;
    assert_eq!(again.event().id(), events[0].id());
    assert!(again.attempt() >= 2);
    again.ack().await.unwrap();
    sub.close().await.unwrap();

    // Everything acked was acked on the broker: a new member gets nothing.
    let mut sub = member(backend.bus(), &group, ty).await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(quiet.is_err(), "an acked event came back: {quiet:?}");
}

/// Whether a queue exists on the broker (a passive declare; a 404 closes the channel).
async fn queue_exists(connection: &lapin::Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let exists = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok();
    if channel.status().connected() {
        let _ = channel.close(200, "done".into()).await;
    }
    exists
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn two_queue_prefixes_keep_separate_copies_of_one_group() {
    let a = RabbitTestBackend::with_config(|c| c.queue_prefix("env-a.")).await;
    let b =
        RabbitTestBackend::with_config(|c| c.exchange(a.bus().exchange()).queue_prefix("env-b."))
            .await;
    assert_eq!(a.bus().exchange(), b.bus().exchange(), "one exchange");
    // The same group name on both sides.
    let (group, ty) = (unique("prefixed"), "tessera.test.prefixed.v1");
    let mut in_a = member(a.bus(), &group, ty).await;
    let mut in_b = member(b.bus(), &group, ty).await;
    let (conn, _channel) = raw_channel().await;
    for prefix in ["env-a.", "env-b."] {
        for queue in [
            format!("{prefix}{group}"),
            format!("{prefix}{group}.parking-lot"),
        ] {
            assert!(
                queue_exists(&conn, &queue).await,
                "expected the queue {queue} to be declared"
            );
        }
    }
    assert!(
        !queue_exists(&conn, &group).await,
        "expected no unprefixed queue {group}"
    );

    let events: Vec<_> = (0..5).map(|n| event(ty, n)).collect();
    a.bus()
        .publisher()
        .publish_all(events.clone())
        .await
        .unwrap();
    let mut want: Vec<_> = events.iter().map(|e| e.id().to_owned()).collect();
    want.sort();
    for (side, sub) in [("env-a.", &mut in_a), ("env-b.", &mut in_b)] {
        let mut got = Vec::new();
        for _ in 0..events.len() {
            let d = next(sub).await;
            got.push(d.event().id().to_owned());
            // On side a, the first event goes through a retry queue, the
            // second to the parking lot: both of side a's own.
            match (side, d.event().id()) {
                ("env-a.", id) if id == events[0].id() => {
                    d.retry_after(Duration::from_millis(50)).await.unwrap();
                }
                ("env-a.", id) if id == events[1].id() => {
                    d.dead_letter("parked on side a").await.unwrap();
                }
                _ => d.ack().await.unwrap(),
            }
        }
        got.sort();
        assert_eq!(
            got, want,
            "expected the {side} copy of the group to get every event"
        );
    }
    // The retried event comes back to side a only.
    let again = next(&mut in_a).await;
    assert_eq!(
        again.event().id(),
        events[0].id(),
        "expected the retried event on side a"
    );
    again.ack().await.unwrap();
    assert!(
        queue_exists(&conn, &format!("env-a.{group}.retry.50ms")).await,
        "expected the retry queue under side a's prefix"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(300), in_b.next()).await;
    assert!(quiet.is_err(), "expected nothing more on side b: {quiet:?}");

    // parked() adds the prefix: side a's parking lot has the event, b's is empty.
    let parked = parking_lot(a.bus(), &group).await;
    assert_eq!(
        parked.len(),
        1,
        "expected one event parked on side a: {parked:?}"
    );
    assert_eq!(parked[0].event.as_ref().unwrap().id(), events[1].id());
    assert_eq!(parked[0].reason, "parked on side a");
    assert!(
        parking_lot(b.bus(), &group).await.is_empty(),
        "expected nothing parked on side b"
    );
    in_a.close().await.unwrap();
    in_b.close().await.unwrap();
}

/// A queue as `rabbitmqctl list_queues` shows it: its type and arguments.
#[derive(Debug)]
struct BrokerQueue {
    kind: String,
    arguments: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The queues on the broker whose names start with `prefix`.
async fn broker_queues(prefix: &str) -> std::collections::BTreeMap<String, BrokerQueue> {
    let prefix = prefix.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "--quiet",
                "--formatter",
                "json",
                "name",
                "type",
                "arguments",
            ])
            .output()
            .expect("rabbitmqctl runs");
        assert!(out.status.success(), "rabbitmqctl list_queues failed");
        let listing: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("rabbitmqctl prints json");
        listing
            .into_iter()
            .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|q| {
                // Each argument is [name, amqp type, value].
                let arguments = q["arguments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| (a[0].as_str().unwrap().to_owned(), a[2].clone()))
                    .collect();
                let queue = BrokerQueue {
                    kind: q["type"].as_str().unwrap().to_owned(),
                    arguments,
                };
                (q["name"].as_str().unwrap().to_owned(), queue)
            })
            .collect()
    })
    .await
    .expect("rabbitmqctl task")
}

/// How many messages wait in a queue (a passive declare).
async fn queue_depth(channel: &lapin::Channel, queue: &str) -> u32 {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap_or_else(|e| panic!("expected the queue {queue} to exist: {e}"))
        .message_count()
}

/// Publishes one event of type `ty` and retries it after `delay` when it
/// arrives on `sub`, which declares the group's retry queue for that delay.
async fn retry_one(bus: &RabbitBus, sub: &mut Box<dyn Subscription>, ty: &str, delay: Duration) {
    bus.publisher().publish(event(ty, 1)).await.unwrap();
    next(sub).await.retry_after(delay).await.unwrap();
}

fn quorum_backend(
    prefix: &str,
    delivery_limit: u32,
) -> impl std::future::Future<Output = RabbitTestBackend> + '_ {
    RabbitTestBackend::with_config(move |c| {
        c.queue_type(QueueType::Quorum { delivery_limit })
            .queue_prefix(prefix)
    })
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn every_queue_of_a_quorum_group_is_a_quorum_queue_that_dead_letters_at_least_once() {
    let prefix = format!("{}.", unique("quorum-topology"));
    let backend = quorum_backend(&prefix, 3).await;
    let ty = "tessera.test.quorum_topology.v1";
    let mut sub = member(backend.bus(), "g", ty).await;
    // A retry declares the retry queue.
    retry_one(backend.bus(), &mut sub, ty, Duration::from_millis(250)).await;

    let queues = broker_queues(&prefix).await;
    let (group, parking_lot, retry) = (
        format!("{prefix}g"),
        format!("{prefix}g.parking-lot"),
        format!("{prefix}g.retry.250ms"),
    );
    let names: Vec<_> = queues.keys().cloned().collect();
    assert_eq!(
        names,
        [group.clone(), parking_lot.clone(), retry.clone()],
        "expected the group's queue, its parking lot and one retry queue"
    );
    let args = |name: &str| -> Vec<(String, serde_json::Value)> {
        queues[name]
            .arguments
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let pair = |k: &str, v: serde_json::Value| (k.to_owned(), v);
    use serde_json::json;
    for name in [&group, &parking_lot, &retry] {
        assert_eq!(
            queues[name].kind, "quorum",
            "expected {name} to be a quorum queue"
        );
    }
    // The test backend's temporary topology adds x-expires (60 s of idle time).
    assert_eq!(
        args(&group),
        [
            pair("x-dead-letter-exchange", json!("")),
            pair("x-dead-letter-routing-key", json!(parking_lot)),
            pair("x-dead-letter-strategy", json!("at-least-once")),
            pair("x-delivery-limit", json!(3)),
            pair("x-expires", json!(60_000)),
            pair("x-overflow", json!("reject-publish")),
            pair("x-queue-type", json!("quorum")),
        ]
    );
    // An explicit delivery limit that never drops a dead letter (RabbitMQ 4.x would apply 20).
    assert_eq!(
        args(&parking_lot),
        [
            pair("x-delivery-limit", json!(2_147_483_647)),
            pair("x-expires", json!(60_000)),
            pair("x-queue-type", json!("quorum")),
        ]
    );
    assert_eq!(
        args(&retry),
        [
            pair("x-dead-letter-exchange", json!("")),
            pair("x-dead-letter-routing-key", json!(group)),
            pair("x-dead-letter-strategy", json!("at-least-once")),
            pair("x-expires", json!(60_250)),
            pair("x-message-ttl", json!(250)),
            pair("x-overflow", json!("reject-publish")),
            pair("x-queue-type", json!("quorum")),
        ]
    );
    // Declaring them again (a reconnect, a second member) is idempotent.
    let mut second = backend
        .bus()
        .subscriber()
        .subscribe(SubscribeOptions::new("g").event_type(ty))
        .await
        .expect("redeclaring the same quorum topology works");
    let back = next(&mut sub).await;
    back.ack().await.unwrap();
    second.close().await.unwrap();
    sub.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn a_quorum_parking_lot_of_an_earlier_version_without_a_delivery_limit_is_kept() {
    let prefix = format!("{}.", unique("quorum-upgrade"));
    let ty = "tessera.test.quorum_upgrade.v1";
    let parking_lot = format!("{prefix}g.parking-lot");
    // The parking lot as Tessera 0.1 declared it: quorum, no x-delivery-limit.
    let (_conn, channel) = raw_channel().await;
    let mut earlier = FieldTable::default();
    earlier.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    earlier.insert("x-expires".into(), AMQPValue::LongLongInt(60_000));
    channel
        .queue_declare(
            parking_lot.as_str().into(),
            lapin::options::QueueDeclareOptions::durable(),
            earlier,
        )
        .await
        .unwrap();
    let backend = quorum_backend(&prefix, 3).await;
    let mut sub = member(backend.bus(), "g", ty).await;
    backend
        .bus()
        .publisher()
        .publish(event(ty, 1))
        .await
        .unwrap();
    next(&mut sub)
        .await
        .dead_letter("still parks")
        .await
        .unwrap();
    let parked = parked_at_least(backend.bus(), "g", 1).await;
    assert_eq!(parked[0].reason, "still parks");
    let queues = broker_queues(&prefix).await;
    assert!(
        !queues[&parking_lot]
            .arguments
            .contains_key("x-delivery-limit"),
        "the earlier lot is kept as it was: {:?}",
        queues[&parking_lot]
    );
    // Anything else that differs is still a mismatch.
    let classic = format!("{}.", unique("quorum-upgrade-classic"));
    channel
        .queue_declare(
            format!("{classic}g.parking-lot").as_str().into(),
            lapin::options::QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let other = quorum_backend(&classic, 3).await;
    let error = other
        .bus()
        .subscriber()
        .subscribe(SubscribeOptions::new("g").event_type(ty))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BusError::QueueMismatch { queue, .. } if queue.ends_with("g.parking-lot")),
        "{error:?}"
    );
    sub.close().await.unwrap();
    for queue in [
        format!("{classic}g.parking-lot"),
        format!("{prefix}g"),
        parking_lot,
    ] {
        let _ = channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await;
    }
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn a_transient_failure_on_a_quorum_group_waits_in_the_quorum_retry_queue_and_comes_back() {
    let prefix = format!("{}.", unique("quorum-retry"));
    let backend = quorum_backend(&prefix, 5).await;
    let ty = "tessera.test.quorum_retry.v1";
    let mut sub = member(backend.bus(), "g", ty).await;
    let e = event(ty, 1);
    backend.bus().publisher().publish(e.clone()).await.unwrap();

    // The handler fails transiently the first time: the consumer retries later.
    let first = next(&mut sub).await;
    assert_eq!((first.event().id(), first.attempt()), (e.id(), 1));
    let retried_at = tokio::time::Instant::now();
    first.retry_after(Duration::from_millis(700)).await.unwrap();
    let (_conn, channel) = raw_channel().await;
    let retry_queue = format!("{prefix}g.retry.700ms");
    assert_eq!(
        queue_depth(&channel, &retry_queue).await,
        1,
        "expected the event to wait in {retry_queue}"
    );
    assert_eq!(queue_depth(&channel, &format!("{prefix}g")).await, 0);

    // After the TTL the broker dead-letters it back (at least once) and it is handled.
    let again = next(&mut sub).await;
    assert!(
        retried_at.elapsed() >= Duration::from_millis(700),
        "expected the event back only after the delay, got it after {:?}",
        retried_at.elapsed()
    );
    assert_eq!(again.event(), &e);
    assert_eq!(again.attempt(), 2, "expected the second attempt");
    again.ack().await.unwrap();
    assert_eq!(queue_depth(&channel, &retry_queue).await, 0);
    let quiet = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(quiet.is_err(), "expected nothing more: {quiet:?}");
    assert!(parking_lot(backend.bus(), "g").await.is_empty());
    assert_eq!(
        broker_queues(&retry_queue).await[&retry_queue].kind,
        "quorum"
    );
    sub.close().await.unwrap();
}

#[derive(Debug, Serialize, Deserialize)]
struct QuorumJob {
    n: u32,
}
tessera_event_bus::event!(QuorumJob => "tessera.test.quorum_job.v1");

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn a_permanent_failure_on_a_quorum_group_lands_in_the_quorum_parking_lot_with_its_reason() {
    let prefix = format!("{}.", unique("quorum-park"));
    let backend = quorum_backend(&prefix, 5).await;
    let router = Router::new(Arc::new(backend.bus().subscriber()), "g")
        .handle(|_env: Envelope<QuorumJob>, _ctx: EventContext| async {
            Err(tessera_event_bus::HandlerError::permanent(
                "job 7 refers to a deleted user",
            ))
        })
        .start()
        .await
        .unwrap();
    let events = EventPublisher::new(Arc::new(backend.bus().publisher()), "/tests");
    events.publish(QuorumJob { n: 7 }).await.unwrap();

    let parked = parked_at_least(backend.bus(), "g", 1).await;
    router.shutdown().await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    let event = parked[0].event.as_ref().expect("a valid event");
    assert_eq!(event.event_type(), "tessera.test.quorum_job.v1");
    assert_eq!(
        parked[0].reason,
        "permanent handler error: job 7 refers to a deleted user"
    );
    assert_eq!(parked[0].deliveries, 1);
    // Peeking hands the message back: it stays, with the same count.
    let again = parking_lot(backend.bus(), "g").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event, parked[0].event);
    assert_eq!(again[0].deliveries, 1, "peeking is no delivery");
    let parking_lot = format!("{prefix}g.parking-lot");
    assert_eq!(
        broker_queues(&parking_lot).await[&parking_lot].kind,
        "quorum"
    );
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn switching_a_groups_queue_type_against_existing_queues_is_a_clear_error() {
    let prefix = format!("{}.", unique("switch"));
    let ty = "tessera.test.switch.v1";
    let classic = RabbitTestBackend::with_config(|c| c.queue_prefix(&prefix)).await;
    let quorum = RabbitTestBackend::with_config(|c| {
        c.exchange(classic.bus().exchange())
            .queue_prefix(&prefix)
            .queue_type(QueueType::Quorum { delivery_limit: 5 })
    })
    .await;
    let subscribe = |backend: &RabbitTestBackend, group: &str| {
        let subscriber = backend.bus().subscriber();
        let options = SubscribeOptions::new(group).event_type(ty);
        async move { subscriber.subscribe(options).await }
    };

    // Classic queues exist; the group is switched to quorum.
    let mut sub = subscribe(&classic, "a").await.unwrap();
    sub.close().await.unwrap();
    let err = subscribe(&quorum, "a").await.unwrap_err();
    let BusError::QueueMismatch { queue, mismatch } = &err else {
        panic!("expected a queue mismatch, got {err:?}");
    };
    assert_eq!(queue, &format!("{prefix}a.parking-lot"));
    assert!(
        mismatch.contains("'x-queue-type'") && mismatch.contains("'quorum'"),
        "{mismatch}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("queue `{prefix}a.parking-lot`")) && text.contains("x-queue-type"),
        "{text}"
    );

    // Quorum queues exist; the group is switched back to classic.
    let mut sub = subscribe(&quorum, "b").await.unwrap();
    sub.close().await.unwrap();
    let err = subscribe(&classic, "b").await.unwrap_err();
    assert!(
        matches!(&err, BusError::QueueMismatch { queue, mismatch }
            if *queue == format!("{prefix}b.parking-lot") && mismatch.contains("'x-queue-type'")),
        "{err:?}"
    );

    // A migration that forgot a classic retry queue: the retry says so.
    let mut sub = subscribe(&classic, "c").await.unwrap();
    retry_one(classic.bus(), &mut sub, ty, Duration::from_millis(60_000)).await;
    sub.close().await.unwrap();
    let (_conn, channel) = raw_channel().await;
    for q in [format!("{prefix}c"), format!("{prefix}c.parking-lot")] {
        channel
            .queue_delete(q.as_str().into(), Default::default())
            .await
            .unwrap();
    }
    let mut sub = subscribe(&quorum, "c").await.unwrap();
    quorum
        .bus()
        .publisher()
        .publish(event(ty, 2))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    let err = d
        .retry_after(Duration::from_millis(60_000))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::QueueMismatch { queue, .. }
            if *queue == format!("{prefix}c.retry.60000ms")),
        "{err:?}"
    );
    d.ack().await.unwrap();
    sub.close().await.unwrap();
    let _ = channel
        .queue_delete(
            format!("{prefix}c.retry.60000ms").as_str().into(),
            Default::default(),
        )
        .await;
}

/// Waits until the client has closed every connection the proxy black-holed.
#[tokio::test]
async fn a_peer_that_never_answers_the_amqp_handshake_fails_the_connect_in_time() {
    // No broker needed: the proxy accepts connections and says nothing.
    let proxy = Proxy::plain().await;
    proxy.black_hole(true);
    let limit = Duration::from_millis(500);
    let expected = format!(
        "no AMQP handshake from 127.0.0.1:{} within 500ms",
        proxy.port
    );
    assert_connect_gives_up(
        &proxy,
        config(proxy.url("127.0.0.1"), &unique("tessera-silent")).connect_timeout(limit),
        limit,
        &expected,
    )
    .await;
}

#[test]
fn the_connect_timeout_defaults_to_ten_seconds() {
    let debug = format!("{:?}", RabbitConfig::new("amqp://127.0.0.1/%2f"));
    assert!(debug.contains("connect_timeout: 10s"), "{debug}");
    let debug = format!(
        "{:?}",
        RabbitConfig::new("amqp://127.0.0.1/%2f").connect_timeout(Duration::from_secs(3))
    );
    assert!(debug.contains("connect_timeout: 3s"), "{debug}");
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn recovers_from_a_black_holed_broker_and_loses_nothing_confirmed() {
    let proxy = Proxy::plain().await;
    let name = unique("tessera-black-hole");
    let limit = Duration::from_millis(500);
    let bus = RabbitBus::connect(config(proxy.url("127.0.0.1"), &name).connect_timeout(limit))
        .await
        .unwrap();
    let (group, ty) = (unique("black-hole"), "tessera.test.black_hole.v1");
    let mut sub = member(&bus, &group, ty).await;
    let publisher = Arc::new(bus.publisher());
    let before = event(ty, 0);
    publisher.publish(before.clone()).await.unwrap();

    // The broker goes silent behind the proxy: the connections drop, and
    // every reconnect is accepted but never answered.
    proxy.black_hole(true);
    proxy.cut_connections();
    let during = event(ty, 1);
    let publishing = tokio::spawn({
        let (publisher, during) = (Arc::clone(&publisher), during.clone());
        async move { publisher.publish(during).await }
    });
    // Several attempts time out: the reconnect loop keeps trying.
    let deadline = Instant::now() + PATIENCE;
    while proxy.held() < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(proxy.held() >= 6, "{} attempts", proxy.held());
    let health = bus.health();
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    let detail = health.detail.unwrap_or_default();
    assert!(
        detail.contains("no AMQP handshake from 127.0.0.1:"),
        "{detail}"
    );
    assert!(
        !publishing.is_finished(),
        "the publish waits for the connection"
    );

    // The broker answers again: the bus recovers, the waiting publish is confirmed.
    proxy.black_hole(false);
    tokio::time::timeout(PATIENCE, publishing)
        .await
        .expect("the publish completes once the broker is back")
        .unwrap()
        .expect("the publish is confirmed");
    wait_until_up(&bus).await;
    let after = event(ty, 2);
    publisher.publish(after.clone()).await.unwrap();
    let mut expected: HashSet<String> = [&before, &during, &after]
        .iter()
        .map(|e| e.id().to_owned())
        .collect();
    while !expected.is_empty() {
        let d = next(&mut sub).await;
        expected.remove(d.event().id());
        let _ = d.ack().await;
    }
    // Every attempt that timed out was shut down, none left to lapin.
    proxy.wait_all_released().await;
    bus.close().await;
}
