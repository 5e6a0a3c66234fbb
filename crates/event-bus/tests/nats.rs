//! NATS JetStream backend behaviour beyond the conformance kit: bad input
//! (garbage, missing CloudEvents headers, structured mode, messages too
//! large), the delivery limit, in-progress acks, an incompatible stream, a
//! consumer or the whole stream deleted under a running subscription, and a
//! real server restart.
#![cfg(all(feature = "nats", feature = "testkit"))]

use std::{collections::HashSet, time::Duration};

use async_nats::{HeaderMap, jetstream};
use bytes::Bytes;
use tessera_event_bus::{
    Attributes, BusError, DeadLetterQueue, Delivery, Publisher, RawEvent, SubscribeOptions,
    Subscriber, Subscription,
    nats::{NatsBus, NatsConfig},
    testkit::{NatsTestBackend, nats_url},
    wire,
};

const PATIENCE: Duration = Duration::from_secs(30);

fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

fn event(ty: &str, n: u32) -> RawEvent {
    let mut attrs = Attributes::new(Attributes::new_id(), "/nats-tests", ty);
    attrs.datacontenttype = Some("application/json".to_owned());
    RawEvent::new(attrs, Bytes::from(format!(r#"{{"n":{n}}}"#)))
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("a delivery in time")
        .expect("the subscription works")
        .expect("the subscription is open")
}

async fn assert_quiet(sub: &mut Box<dyn Subscription>, for_: Duration, why: &str) {
    if let Ok(Ok(Some(d))) = tokio::time::timeout(for_, sub.next()).await {
        panic!("{why}: {} came (attempt {})", d.event().id(), d.attempt());
    }
}

async fn subscribe(bus: &NatsBus, group: &str, ty: &str) -> Box<dyn Subscription> {
    bus.subscriber()
        .subscribe(SubscribeOptions::new(group).event_type(ty))
        .await
        .expect("subscribe")
}

/// Waits until the group has `n` dead letters.
async fn dead_letters(bus: &NatsBus, group: &str, n: usize) -> Vec<tessera_event_bus::DeadLetter> {
    let queue = bus.dead_letter_queue(group);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let dead = queue.list(usize::MAX).await.expect("list");
        if dead.len() >= n {
            return dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dead letters, wanted {n}",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes anything to the bus's subject for `ty` as a foreign client would.
async fn publish_raw(bus: &NatsBus, ty: &str, headers: HeaderMap, body: &'static [u8]) {
    let js = jetstream::new(bus.client().clone());
    js.publish_with_headers(
        bus.subject_for(ty).unwrap(),
        headers,
        Bytes::from_static(body),
    )
    .await
    .expect("sent")
    .await
    .expect("stored");
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn garbage_and_headerless_messages_are_parked_with_the_reason_and_the_next_event_flows() {
    let backend = NatsTestBackend::new().await;
    let bus = backend.bus();
    let (group, ty) = (unique("garbage"), "tessera.nats.garbage.v1");
    let mut sub = subscribe(bus, &group, ty).await;

    publish_raw(bus, ty, HeaderMap::new(), b"\x00\xffnot an event").await;
    let mut missing_source = HeaderMap::new();
    missing_source.insert("ce-specversion", "1.0");
    missing_source.insert("ce-id", "no-source-1");
    missing_source.insert("ce-type", ty);
    publish_raw(bus, ty, missing_source, b"{}").await;
    let good = event(ty, 1);
    bus.publisher()
        .publish(good.clone())
        .await
        .expect("publish");

    let d = next(&mut sub).await;
    assert_eq!(
        d.event().id(),
        good.id(),
        "only the valid event is handed over"
    );
    d.ack().await.unwrap();

    let dead = dead_letters(bus, &group, 2).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let garbage = dead[0].event.as_ref().expect_err("garbage is no event");
    assert_eq!(
        &garbage.body[..],
        b"\x00\xffnot an event",
        "the body is kept as it was"
    );
    assert!(
        dead[0].reason.starts_with("invalid cloudevent:")
            && dead[0].reason.contains("`specversion` is missing"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[1].reason.contains("`source` is missing"),
        "{}",
        dead[1].reason
    );
    assert_eq!(dead[1].deliveries, 1);
    assert_quiet(
        &mut sub,
        Duration::from_millis(300),
        "a parked message came back",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn structured_mode_from_a_foreign_publisher_is_read() {
    let backend = NatsTestBackend::new().await;
    let bus = backend.bus();
    let (group, ty) = (unique("structured"), "tessera.nats.structured.v1");
    let mut sub = subscribe(bus, &group, ty).await;
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", wire::STRUCTURED_CONTENT_TYPE);
    publish_raw(
        bus,
        ty,
        headers,
        br#"{"specversion":"1.0","id":"py-1","source":"/python","type":"tessera.nats.structured.v1","datacontenttype":"application/json","data":{"n":7}}"#,
    )
    .await;
    let d = next(&mut sub).await;
    assert_eq!(d.event().id(), "py-1");
    assert_eq!(d.event().attributes.source, "/python");
    assert_eq!(&d.event().data[..], br#"{"n":7}"#);
    d.ack().await.unwrap();
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn a_message_larger_than_the_server_allows_is_refused_clearly_and_nothing_is_stored() {
    let backend = NatsTestBackend::new().await;
    let bus = backend.bus();
    let (group, ty) = (unique("large"), "tessera.nats.large.v1");
    let mut sub = subscribe(bus, &group, ty).await;
    let max = bus.client().max_payload();
    let mut big = event(ty, 1);
    big.data = Bytes::from(vec![b'x'; max + 1]);
    let err = bus.publisher().publish(big).await.unwrap_err();
    assert!(
        matches!(&err, BusError::Rejected(m) if m.contains("larger than the server allows")),
        "{err}"
    );
    let small = event(ty, 2);
    bus.publisher()
        .publish(small.clone())
        .await
        .expect("a normal event still goes");
    let d = next(&mut sub).await;
    assert_eq!(
        d.event().id(),
        small.id(),
        "the refused event was never stored"
    );
    d.ack().await.unwrap();
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn event_types_that_cannot_be_subjects_are_refused_before_sending() {
    let backend = NatsTestBackend::new().await;
    let err = backend
        .bus()
        .publisher()
        .publish(event("tessera.nats.*", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::Unsupported(m) if m.contains("wildcards")),
        "{err}"
    );
    let err = backend
        .bus()
        .subscriber()
        .subscribe(SubscribeOptions::new("a group with spaces").event_type("t"))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::InvalidSubscription(_)), "{err}");
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn an_event_over_the_delivery_limit_is_parked_with_the_reason() {
    let backend = NatsTestBackend::with_config(|c| c.max_deliver(2)).await;
    let bus = backend.bus();
    let (group, ty) = (unique("limit"), "tessera.nats.limit.v1");
    let mut sub = subscribe(bus, &group, ty).await;
    let e = event(ty, 1);
    bus.publisher().publish(e.clone()).await.unwrap();
    for attempt in 1..=2 {
        let d = next(&mut sub).await;
        assert_eq!(d.attempt(), attempt);
        d.nack().await.unwrap();
    }
    // The third delivery is parked by the member that pulls it, never handed over.
    assert_quiet(
        &mut sub,
        Duration::from_secs(1),
        "a delivery over the limit was handed over",
    )
    .await;
    let dead = dead_letters(bus, &group, 1).await;
    assert_eq!(dead[0].event().expect("an event").id(), e.id());
    assert_eq!(dead[0].deliveries, 3);
    assert!(
        dead[0].reason.contains("more than the limit of 2"),
        "{}",
        dead[0].reason
    );
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn a_long_handler_keeps_its_event_past_ack_wait() {
    let backend = NatsTestBackend::with_config(|c| c.ack_wait(Duration::from_secs(1))).await;
    let bus = backend.bus();
    let (group, ty) = (unique("long"), "tessera.nats.long.v1");
    let mut first = subscribe(bus, &group, ty).await;
    let mut second = subscribe(bus, &group, ty).await;
    let e = event(ty, 1);
    bus.publisher().publish(e.clone()).await.unwrap();
    let held = next(&mut first).await;
    // Three ack waits: without in-progress acks the server would hand it to `second`.
    assert_quiet(
        &mut second,
        Duration::from_secs(3),
        "a delivery in progress was given away",
    )
    .await;
    held.ack().await.unwrap();
    assert_quiet(
        &mut first,
        Duration::from_millis(1500),
        "an acked event came back",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn an_incompatible_existing_stream_is_a_clear_error_at_connect() {
    let name = format!("TESSERA_TEST_{}", uuid::Uuid::new_v4().simple());
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("elsewhere.{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let err = NatsBus::connect(
        NatsConfig::new(nats_url())
            .stream(&name)
            .subject_prefix(format!("tessera.test.{name}")),
    )
    .await
    .unwrap_err();
    js.delete_stream(&name).await.unwrap();
    let text = err.to_string();
    assert!(matches!(err, BusError::StreamMismatch { .. }), "{text}");
    assert!(
        text.contains(&format!("stream `{name}`")) && text.contains("does not capture"),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn a_consumer_deleted_under_a_running_subscription_is_created_again_and_nothing_is_lost() {
    let backend = NatsTestBackend::new().await;
    let bus = backend.bus();
    let (group, ty) = (unique("consumer-lost"), "tessera.nats.consumer_lost.v1");
    let mut sub = subscribe(bus, &group, ty).await;
    let publisher = bus.publisher();
    let before = event(ty, 1);
    publisher.publish(before.clone()).await.unwrap();
    next(&mut sub).await.ack().await.unwrap();

    let js = jetstream::new(bus.client().clone());
    let stream = js.get_stream(bus.config().stream_name()).await.unwrap();
    let names: Vec<String> = futures_util::TryStreamExt::try_collect(stream.consumer_names())
        .await
        .unwrap();
    for name in names {
        stream.delete_consumer(&name).await.unwrap();
    }
    let mut expected = HashSet::new();
    for n in 0..5 {
        let e = event(ty, n);
        expected.insert(e.id().to_owned());
        publisher.publish(e).await.unwrap();
    }
    while !expected.is_empty() {
        let d = next(&mut sub).await;
        assert_ne!(d.event().id(), before.id(), "the acked event came back");
        expected.remove(d.event().id());
        d.ack().await.unwrap();
    }
}

#[tokio::test]
#[ignore = "needs NATS"]
async fn a_stream_deleted_under_a_running_subscription_is_created_again_and_later_events_arrive() {
    let backend = NatsTestBackend::new().await;
    let bus = backend.bus();
    let (group, ty) = (unique("stream-lost"), "tessera.nats.stream_lost.v1");
    let mut sub = subscribe(bus, &group, ty).await;
    let publisher = bus.publisher();
    publisher.publish(event(ty, 0)).await.unwrap();
    next(&mut sub).await.ack().await.unwrap();

    let js = jetstream::new(bus.client().clone());
    js.delete_stream(bus.config().stream_name()).await.unwrap();
    // The publisher finds no stream, creates it again and publishes.
    let mut expected = HashSet::new();
    for n in 1..=5 {
        let e = event(ty, n);
        expected.insert(e.id().to_owned());
        publisher
            .publish(e)
            .await
            .expect("published into the re-created stream");
    }
    while !expected.is_empty() {
        let d = next(&mut sub).await;
        assert!(
            expected.remove(d.event().id()),
            "unexpected {}",
            d.event().id()
        );
        d.ack().await.unwrap();
    }
    // The parking stream came back too: dead letters still work.
    let last = event(ty, 9);
    publisher.publish(last.clone()).await.unwrap();
    next(&mut sub)
        .await
        .dead_letter("after the loss")
        .await
        .unwrap();
    let dead = dead_letters(bus, &group, 1).await;
    assert_eq!(dead[0].reason, "after the loss");
    assert_eq!(dead[0].event().expect("an event").id(), last.id());
}

/// A nats-server of the test's own on a free port, restartable on the same
/// port and storage directory.
struct OwnServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnServer {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(unique("tessera-nats"));
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let child = std::process::Command::new(
            std::env::var("NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".to_owned()),
        )
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(&self.dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server runs (NATS_SERVER, default /usr/sbin/nats-server)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nats-server did not listen on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server"]
async fn a_server_restart_loses_nothing_confirmed_and_consumers_resume() {
    let mut server = OwnServer::start();
    let bus = NatsBus::connect(
        NatsConfig::new(server.url())
            .reconnect_delays(Duration::from_millis(50), Duration::from_millis(500))
            .ack_wait(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let ty = "tessera.nats.restart.v1";
    let mut sub = subscribe(&bus, "restart", ty).await;
    let publisher = bus.publisher();
    let mut expected = HashSet::new();
    for n in 0..10 {
        let e = event(ty, n);
        expected.insert(e.id().to_owned());
        publisher.publish(e).await.unwrap();
    }
    server.kill();
    let restart = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(1));
        server.run();
        server
    });
    // Published while the server is down: each is retried until it is stored.
    for n in 10..20 {
        let e = event(ty, n);
        expected.insert(e.id().to_owned());
        publisher
            .publish(e)
            .await
            .expect("published across the restart");
    }
    let _server = restart.await.unwrap();
    while !expected.is_empty() {
        let d = next(&mut sub).await;
        expected.remove(d.event().id());
        d.ack().await.unwrap();
    }
    assert!(bus.health().is_up(), "{:?}", bus.health());
    bus.close().await;
}
