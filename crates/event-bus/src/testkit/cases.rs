//! The conformance cases, one async fn each; [`conformance_tests!`](crate::conformance_tests)
//! turns each into a test. Each panics with a message saying what broke.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_event_bus::testkit::{MemoryTestBackend, cases};
//!
//! cases::nack_redelivers(&MemoryTestBackend::new()).await;
//! # });
//! ```

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use super::{DeadLettered, TestBackend};
use crate::{
    Attributes, BusError, Delivery, Envelope, EventContext, EventPublisher, HandlerError, RawEvent,
    SubscribeOptions, Subscription,
    router::{RetryPolicy, Router},
};

fn unique_group(case: &str) -> String {
    format!("testkit-{case}-{}", uuid::Uuid::new_v4().simple())
}

fn kit_type(case: &str) -> String {
    format!("tessera.testkit.{case}.v1")
}

fn raw_event(ty: &str, n: u32, subject: Option<&str>) -> RawEvent {
    let mut attrs = Attributes::new(Attributes::new_id(), "/testkit", ty);
    attrs.subject = subject.map(str::to_owned);
    attrs.datacontenttype = Some("application/json".to_owned());
    RawEvent::new(attrs, Bytes::from(format!(r#"{{"n":{n}}}"#)))
}

async fn subscribe<B: TestBackend>(
    backend: &B,
    group: &str,
    ty: &str,
) -> (Arc<dyn crate::Subscriber>, Box<dyn Subscription>) {
    let subscriber = backend.subscriber().await;
    let sub = subscriber
        .subscribe(SubscribeOptions::new(group).event_type(ty))
        .await
        .expect("subscribe");
    (subscriber, sub)
}

async fn next<B: TestBackend>(backend: &B, sub: &mut Box<dyn Subscription>) -> Delivery {
    match tokio::time::timeout(backend.patience(), sub.next()).await {
        Ok(Ok(Some(delivery))) => delivery,
        Ok(Ok(None)) => panic!("the subscription closed while a delivery was expected"),
        Ok(Err(e)) => panic!("the subscription failed: {e}"),
        Err(_) => panic!("no delivery within {:?}", backend.patience()),
    }
}

async fn assert_quiet<B: TestBackend>(backend: &B, sub: &mut Box<dyn Subscription>, why: &str) {
    if let Ok(Ok(Some(d))) = tokio::time::timeout(backend.quiet_period(), sub.next()).await {
        panic!(
            "{why}: unexpected delivery of {} (attempt {})",
            d.event().id(),
            d.attempt()
        );
    }
}

async fn wait_dead_letters<B: TestBackend>(
    backend: &B,
    group: &str,
    n: usize,
) -> Vec<DeadLettered> {
    let deadline = tokio::time::Instant::now() + backend.patience();
    loop {
        let dead = backend.dead_letters(group).await;
        if dead.len() >= n {
            return dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} dead letters in {group}, found {}",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A published event arrives with its attributes and data intact.
pub async fn publish_subscribe<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("pubsub"), kit_type("publish_subscribe"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let mut event = raw_event(&ty, 1, Some("user-1"));
    event.attributes.time = Some(time::OffsetDateTime::now_utc());
    event.attributes.dataschema = Some("https://example.com/schema.json".to_owned());
    event.attributes.set_correlation_id("corr-1");
    event.attributes.set_causation_id("cause-1");
    event
        .attributes
        .set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    event.attributes.set_tracestate("kit=1");
    backend
        .publisher()
        .await
        .publish(event.clone())
        .await
        .expect("publish");

    let d = next(backend, &mut sub).await;
    assert_eq!(d.event(), &event, "the event arrives unchanged");
    assert_eq!(d.attempt(), 1);
    d.ack().await.expect("ack");
    assert_quiet(backend, &mut sub, "an acked event came back").await;
}

/// Many events published at once all arrive, each once.
pub async fn many_events_in_one_go<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("many"), kit_type("many_events_in_one_go"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let events: Vec<_> = (0..300).map(|n| raw_event(&ty, n, None)).collect();
    let mut expected: HashSet<String> = events.iter().map(|e| e.id().to_owned()).collect();
    backend
        .publisher()
        .await
        .publish_all(events)
        .await
        .expect("publish_all");
    while !expected.is_empty() {
        let d = next(backend, &mut sub).await;
        assert!(
            expected.remove(d.event().id()),
            "duplicate or unknown {}",
            d.event().id()
        );
        d.ack().await.expect("ack");
    }
    assert_quiet(backend, &mut sub, "more events than published").await;
}

/// Every consumer group receives each event.
pub async fn consumer_groups_each_get_a_copy<B: TestBackend>(backend: &B) {
    let ty = kit_type("consumer_groups");
    let (a, b) = (unique_group("groups-a"), unique_group("groups-b"));
    let (_sa, mut sub_a) = subscribe(backend, &a, &ty).await;
    let (_sb, mut sub_b) = subscribe(backend, &b, &ty).await;
    let publisher = backend.publisher().await;
    let mut ids = Vec::new();
    for n in 0..10 {
        let e = raw_event(&ty, n, None);
        ids.push(e.id().to_owned());
        publisher.publish(e).await.expect("publish");
    }
    for sub in [&mut sub_a, &mut sub_b] {
        let mut got = Vec::new();
        for _ in 0..10 {
            let d = next(backend, sub).await;
            got.push(d.event().id().to_owned());
            d.ack().await.expect("ack");
        }
        got.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want, "each group gets every event");
    }
}

/// Members of one group compete: an event held by one member is not given to
/// another, and each event is handled once.
pub async fn competing_consumers_get_each_event_once<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("compete"), kit_type("competing_consumers"));
    let (_s1, mut m1) = subscribe(backend, &group, &ty).await;
    let (_s2, mut m2) = subscribe(backend, &group, &ty).await;
    let publisher = backend.publisher().await;
    publisher
        .publish(raw_event(&ty, 0, None))
        .await
        .expect("publish");
    publisher
        .publish(raw_event(&ty, 1, None))
        .await
        .expect("publish");
    let d1 = next(backend, &mut m1).await;
    let d2 = next(backend, &mut m2).await;
    assert_ne!(
        d1.event().id(),
        d2.event().id(),
        "an unsettled event went to two members"
    );
    d1.ack().await.expect("ack");
    d2.ack().await.expect("ack");

    let total = 60;
    for n in 0..total {
        publisher
            .publish(raw_event(&ty, n, None))
            .await
            .expect("publish");
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut members = Vec::new();
    for mut member in [m1, m2] {
        let tx = tx.clone();
        members.push(tokio::spawn(async move {
            while let Ok(Some(d)) = member.next().await {
                let _ = tx.send(d.event().id().to_owned());
                d.ack().await.expect("ack");
            }
        }));
    }
    drop(tx);
    let mut seen = HashSet::new();
    while seen.len() < total as usize {
        let id = tokio::time::timeout(backend.patience(), rx.recv())
            .await
            .expect("all events handled in time")
            .expect("members alive");
        assert!(seen.insert(id.clone()), "event {id} was handled twice");
    }
    if let Ok(Some(id)) = tokio::time::timeout(backend.quiet_period(), rx.recv()).await {
        panic!("event {id} was handled after all were handled once");
    }
    members.iter().for_each(tokio::task::JoinHandle::abort);
}

/// A nacked event is delivered again.
pub async fn nack_redelivers<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("nack"), kit_type("nack_redelivers"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let event = raw_event(&ty, 1, None);
    backend
        .publisher()
        .await
        .publish(event.clone())
        .await
        .expect("publish");
    let first = next(backend, &mut sub).await;
    first.nack().await.expect("nack");
    let again = next(backend, &mut sub).await;
    assert_eq!(again.event().id(), event.id());
    assert!(again.attempt() >= 2, "a redelivery reports attempt >= 2");
    again.ack().await.expect("ack");
    assert_quiet(backend, &mut sub, "acked after nack, yet delivered again").await;
}

/// An event never settled is delivered to another member once its consumer closes.
pub async fn no_ack_redelivers_after_consumer_closes<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("noack"), kit_type("no_ack_redelivers"));
    let (s1, mut m1) = subscribe(backend, &group, &ty).await;
    let event = raw_event(&ty, 1, None);
    backend
        .publisher()
        .await
        .publish(event.clone())
        .await
        .expect("publish");
    let unsettled = next(backend, &mut m1).await;
    assert_eq!(unsettled.event().id(), event.id());
    let (_s2, mut m2) = subscribe(backend, &group, &ty).await;
    m1.close().await.expect("close subscription");
    s1.close().await.expect("close subscriber");
    drop(unsettled);
    let again = next(backend, &mut m2).await;
    assert_eq!(again.event().id(), event.id());
    again.ack().await.expect("ack");
}

/// `retry_after` delivers the event again later.
pub async fn delayed_retry_redelivers_later<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("delay"), kit_type("delayed_retry"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let event = raw_event(&ty, 1, None);
    backend
        .publisher()
        .await
        .publish(event.clone())
        .await
        .expect("publish");
    next(backend, &mut sub)
        .await
        .retry_after(Duration::from_millis(100))
        .await
        .expect("retry_after");
    let again = next(backend, &mut sub).await;
    assert_eq!(again.event().id(), event.id());
    assert!(again.attempt() >= 2);
    again.ack().await.expect("ack");
}

/// A dead-lettered event is kept with its reason and not delivered again.
pub async fn dead_letter_keeps_the_reason<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("dead"), kit_type("dead_letter"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let event = raw_event(&ty, 1, None);
    backend
        .publisher()
        .await
        .publish(event.clone())
        .await
        .expect("publish");
    next(backend, &mut sub)
        .await
        .dead_letter("cannot process: test")
        .await
        .expect("dead_letter");
    let dead = wait_dead_letters(backend, &group, 1).await;
    assert_eq!(dead[0].event.id(), event.id());
    assert_eq!(dead[0].reason, "cannot process: test");
    assert_quiet(backend, &mut sub, "a dead-lettered event came back").await;
}

/// A second ack, or a nack after an ack, changes nothing.
pub async fn settling_is_idempotent<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("idem"), kit_type("settling_idempotent"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    backend
        .publisher()
        .await
        .publish(raw_event(&ty, 1, None))
        .await
        .expect("publish");
    let d = next(backend, &mut sub).await;
    d.ack().await.expect("ack");
    d.ack().await.expect("second ack is ok");
    d.nack().await.expect("nack after ack is ok");
    d.dead_letter("late")
        .await
        .expect("dead letter after ack is ok");
    assert_quiet(backend, &mut sub, "a nack after the ack redelivered").await;
    assert!(backend.dead_letters(&group).await.is_empty());
}

/// One consumer sees each subject's events in publish order (when declared).
pub async fn ordering_per_subject_with_a_single_consumer<B: TestBackend>(backend: &B) {
    if !backend.capabilities().ordering_per_subject {
        return;
    }
    let (group, ty) = (unique_group("order"), kit_type("ordering"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let publisher = backend.publisher().await;
    let subjects = ["a", "b", "c", "d"];
    for n in 0..100u32 {
        let subject = subjects[n as usize % subjects.len()];
        publisher
            .publish(raw_event(&ty, n, Some(subject)))
            .await
            .expect("publish");
    }
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for _ in 0..100 {
        let d = next(backend, &mut sub).await;
        let n: serde_json::Value = serde_json::from_slice(&d.event().data).expect("kit data");
        let n = n["n"].as_u64().expect("n") as u32;
        seen.entry(d.event().subject().unwrap_or_default().to_owned())
            .or_default()
            .push(n);
        d.ack().await.expect("ack");
    }
    for (subject, ns) in seen {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "subject {subject} out of order");
    }
}

/// Publishers on many tasks at once lose nothing.
pub async fn concurrent_publishers_lose_nothing<B: TestBackend>(backend: &B) {
    let (group, ty) = (
        unique_group("concurrent"),
        kit_type("concurrent_publishers"),
    );
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let publisher = backend.publisher().await;
    let mut tasks = Vec::new();
    for t in 0..4u32 {
        let publisher = Arc::clone(&publisher);
        let ty = ty.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..50 {
                let e = raw_event(&ty, t * 100 + n, None);
                ids.push(e.id().to_owned());
                publisher.publish(e).await.expect("publish");
            }
            ids
        }));
    }
    let mut expected = HashSet::new();
    for task in tasks {
        expected.extend(task.await.expect("publisher task"));
    }
    assert_eq!(expected.len(), 200);
    while !expected.is_empty() {
        let d = next(backend, &mut sub).await;
        assert!(
            expected.remove(d.event().id()),
            "duplicate or unknown {}",
            d.event().id()
        );
        d.ack().await.expect("ack");
    }
}

/// Closing the subscriber ends a waiting `next`; closes are idempotent; a
/// closed publisher refuses to publish.
pub async fn close_while_consuming_ends_the_subscription<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("close"), kit_type("close_while_consuming"));
    let (subscriber, mut sub) = subscribe(backend, &group, &ty).await;
    let waiting = tokio::spawn(async move {
        let result = sub.next().await.map(|d| d.is_some());
        (sub, result)
    });
    tokio::time::sleep(backend.quiet_period()).await;
    subscriber.close().await.expect("close");
    subscriber.close().await.expect("second close is ok");
    let (mut sub, result) = tokio::time::timeout(backend.patience(), waiting)
        .await
        .expect("next returns after close")
        .expect("task");
    assert!(
        matches!(result, Ok(false)),
        "next ends with Ok(None) after close"
    );
    sub.close()
        .await
        .expect("closing a closed subscription is ok");

    let publisher = backend.publisher().await;
    publisher.close().await.expect("close publisher");
    publisher.close().await.expect("second close is ok");
    let err = publisher
        .publish(raw_event(&ty, 1, None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BusError::Closed),
        "publish after close: {err}"
    );
}

macro_rules! kit_events {
    ($($name:ident => $ty:literal),* $(,)?) => {
        $(
            #[derive(Debug, Clone, Serialize, Deserialize)]
            struct $name {
                n: u32,
            }
            crate::event!($name => $ty);
        )*
    };
}

kit_events! {
    KitTransient => "tessera.testkit.router_transient.v1",
    KitExhausted => "tessera.testkit.router_exhausted.v1",
    KitPermanent => "tessera.testkit.router_permanent.v1",
    KitUndecodable => "tessera.testkit.router_undecodable.v1",
    KitSentinel => "tessera.testkit.router_sentinel.v1",
    KitDrain => "tessera.testkit.router_drain.v1",
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::exponential()
        .max_attempts(3)
        .min_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

/// A handler failing transiently is retried and its event acked once it succeeds.
pub async fn transient_error_retries_then_succeeds<B: TestBackend>(backend: &B) {
    let group = unique_group("transient");
    let calls = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counter = Arc::clone(&calls);
    let router = Router::new(backend.subscriber().await, &group)
        .retry(fast_retry())
        .handle(move |env: Envelope<KitTransient>, _ctx: EventContext| {
            let (counter, tx) = (Arc::clone(&counter), tx.clone());
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(HandlerError::transient("not yet"));
                }
                let _ = tx.send(env.data().n);
                Ok(())
            }
        })
        .start()
        .await
        .expect("router starts");
    let events = EventPublisher::new(backend.publisher().await, "/testkit");
    events
        .publish(KitTransient { n: 7 })
        .await
        .expect("publish");
    let n = tokio::time::timeout(backend.patience(), rx.recv())
        .await
        .expect("handled in time");
    assert_eq!(n, Some(7));
    router.shutdown().await.expect("shutdown");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    assert!(backend.dead_letters(&group).await.is_empty());

    let (_s, mut sub) = subscribe(backend, &group, KitTransient::TYPE_NAME).await;
    assert_quiet(backend, &mut sub, "the handled event was not acked").await;
}

/// Transient errors that outlast the retries dead-letter the event with the reason.
pub async fn dead_letter_after_n_attempts_with_the_reason<B: TestBackend>(backend: &B) {
    let group = unique_group("exhausted");
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new(backend.subscriber().await, &group)
        .retry(fast_retry())
        .handle(move |_env: Envelope<KitExhausted>, _ctx: EventContext| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Err(HandlerError::transient("database unavailable"))
            }
        })
        .start()
        .await
        .expect("router starts");
    let events = EventPublisher::new(backend.publisher().await, "/testkit");
    let id = events
        .publish(KitExhausted { n: 1 })
        .await
        .expect("publish");
    let dead = wait_dead_letters(backend, &group, 1).await;
    router.shutdown().await.expect("shutdown");
    assert_eq!(dead[0].event.id(), id);
    assert!(
        dead[0].reason.contains("gave up after 3 attempts")
            && dead[0].reason.contains("database unavailable"),
        "reason: {}",
        dead[0].reason
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A permanent error dead-letters at once, without retries.
pub async fn permanent_error_dead_letters_at_once<B: TestBackend>(backend: &B) {
    let group = unique_group("permanent");
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new(backend.subscriber().await, &group)
        .retry(fast_retry())
        .handle(move |_env: Envelope<KitPermanent>, _ctx: EventContext| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Err(HandlerError::permanent("user does not exist"))
            }
        })
        .start()
        .await
        .expect("router starts");
    let events = EventPublisher::new(backend.publisher().await, "/testkit");
    events
        .publish(KitPermanent { n: 1 })
        .await
        .expect("publish");
    let dead = wait_dead_letters(backend, &group, 1).await;
    router.shutdown().await.expect("shutdown");
    assert_eq!(
        dead[0].reason,
        "permanent handler error: user does not exist"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no retry for a permanent error"
    );
}

/// Data that does not decode into the handler's type dead-letters with the reason;
/// the handler never runs.
pub async fn undecodable_payload_dead_letters<B: TestBackend>(backend: &B) {
    let group = unique_group("undecodable");
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new(backend.subscriber().await, &group)
        .retry(fast_retry())
        .handle(move |_env: Envelope<KitUndecodable>, _ctx: EventContext| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .start()
        .await
        .expect("router starts");
    let mut garbage = raw_event(KitUndecodable::TYPE_NAME, 0, None);
    garbage.data = Bytes::from_static(b"{\"n\": \"not a number\"");
    backend
        .publisher()
        .await
        .publish(garbage.clone())
        .await
        .expect("publish");
    let dead = wait_dead_letters(backend, &group, 1).await;
    router.shutdown().await.expect("shutdown");
    assert_eq!(dead[0].event.id(), garbage.id());
    assert!(
        dead[0]
            .reason
            .starts_with("undecodable event: could not decode event data"),
        "reason: {}",
        dead[0].reason
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// An event type the group is bound to but no handler handles is acked, not looped.
pub async fn unhandled_event_type_is_acked<B: TestBackend>(backend: &B) {
    let group = unique_group("unhandled");
    let other = kit_type("router_unhandled");
    // Bind the group to a type the router will not handle (an older member did).
    let (binder, mut binding) = subscribe(backend, &group, &other).await;
    binding.close().await.expect("close");
    binder.close().await.expect("close");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = Router::new(backend.subscriber().await, &group)
        .concurrency(1)
        .handle(move |env: Envelope<KitSentinel>, _ctx: EventContext| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(env.data().n);
                Ok(())
            }
        })
        .start()
        .await
        .expect("router starts");
    let publisher = backend.publisher().await;
    publisher
        .publish(raw_event(&other, 1, None))
        .await
        .expect("publish");
    EventPublisher::new(Arc::clone(&publisher), "/testkit")
        .publish(KitSentinel { n: 2 })
        .await
        .expect("publish");
    let n = tokio::time::timeout(backend.patience(), rx.recv())
        .await
        .expect("sentinel handled");
    assert_eq!(n, Some(2));
    router.shutdown().await.expect("shutdown");
    assert!(
        backend.dead_letters(&group).await.is_empty(),
        "unhandled is not dead-lettered"
    );
    let (_s, mut sub) = subscribe(backend, &group, &other).await;
    assert_quiet(backend, &mut sub, "the unhandled event was not acked").await;
}

/// Shutdown stops fetching, lets the in-flight handler finish, and acks its event.
pub async fn shutdown_drains_in_flight_handlers<B: TestBackend>(backend: &B) {
    let group = unique_group("drain");
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let finished = Arc::new(AtomicU32::new(0));
    let (s, r, f) = (
        Arc::clone(&started),
        Arc::clone(&release),
        Arc::clone(&finished),
    );
    let router = Router::new(backend.subscriber().await, &group)
        .concurrency(1)
        .shutdown_timeout(backend.patience())
        .handle(move |_env: Envelope<KitDrain>, _ctx: EventContext| {
            let (s, r, f) = (Arc::clone(&s), Arc::clone(&r), Arc::clone(&f));
            async move {
                s.notify_one();
                r.notified().await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .start()
        .await
        .expect("router starts");
    let events = EventPublisher::new(backend.publisher().await, "/testkit");
    events.publish(KitDrain { n: 1 }).await.expect("publish");
    tokio::time::timeout(backend.patience(), started.notified())
        .await
        .expect("handler started");
    let shutdown = tokio::spawn(router.shutdown());
    // Published after shutdown began: must stay queued for the next consumer.
    let later = events.publish(KitDrain { n: 2 }).await.expect("publish");
    tokio::time::sleep(backend.quiet_period()).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the in-flight handler"
    );
    release.notify_one();
    tokio::time::timeout(backend.patience(), shutdown)
        .await
        .expect("shutdown finishes")
        .expect("task")
        .expect("clean shutdown");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "exactly the in-flight handler ran"
    );

    let (_s, mut sub) = subscribe(backend, &group, KitDrain::TYPE_NAME).await;
    let d = next(backend, &mut sub).await;
    assert_eq!(d.event().id(), later, "only the unfetched event remains");
    d.ack().await.expect("ack");
    assert_quiet(backend, &mut sub, "the drained event was not acked").await;
}

/// Force-closed connections come back and nothing confirmed is lost (when declared).
pub async fn reconnect_loses_nothing<B: TestBackend>(backend: &B) {
    if !backend.capabilities().reconnect {
        return;
    }
    let (group, ty) = (unique_group("reconnect"), kit_type("reconnect"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let publisher = backend.publisher().await;
    let mut expected = HashSet::new();
    for n in 0..100 {
        if n == 50 {
            backend.break_connections().await;
        }
        let e = raw_event(&ty, n, None);
        let id = e.id().to_owned();
        if publisher.publish(e).await.is_ok() {
            expected.insert(id);
        }
    }
    while !expected.is_empty() {
        let d = next(backend, &mut sub).await;
        expected.remove(d.event().id());
        let _ = d.ack().await;
    }
}

/// The type name of a kit event, as a `&str` for subscriptions.
trait TypeName {
    const TYPE_NAME: &'static str;
}

impl<E: crate::Event> TypeName for E {
    const TYPE_NAME: &'static str = E::TYPE;
}
