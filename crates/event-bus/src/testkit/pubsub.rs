//! The publish / subscribe contract: what every [`Publisher`](crate::Publisher) and
//! [`Subscriber`](crate::Subscriber) must do, whatever the broker behind them.
//! [`conformance_tests!`](crate::conformance_tests) turns each case into a test;
//! each panics with a message saying what broke.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_event_bus::testkit::{MemoryTestBackend, pubsub};
//!
//! pubsub::nack_redelivers(&MemoryTestBackend::new()).await;
//! # });
//! ```

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::sync::mpsc;

use super::{
    TestBackend,
    support::{
        assert_quiet, dead_letters, kit_type, next, publish_one, raw_event, subscribe,
        unique_group, wait_dead_letters,
    },
};
use crate::BusError;

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
    let event = publish_one(backend, &ty).await;
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
    let event = publish_one(backend, &ty).await;
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
    let event = publish_one(backend, &ty).await;
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
    let event = publish_one(backend, &ty).await;
    next(backend, &mut sub)
        .await
        .dead_letter("cannot process: test")
        .await
        .expect("dead_letter");
    let dead = wait_dead_letters(backend, &group, 1).await;
    assert_eq!(dead[0].event().expect("a valid event").id(), event.id());
    assert_eq!(dead[0].reason, "cannot process: test");
    assert_quiet(backend, &mut sub, "a dead-lettered event came back").await;
}

/// A second ack, or a nack after an ack, changes nothing.
pub async fn settling_is_idempotent<B: TestBackend>(backend: &B) {
    let (group, ty) = (unique_group("idem"), kit_type("settling_idempotent"));
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    publish_one(backend, &ty).await;
    let d = next(backend, &mut sub).await;
    d.ack().await.expect("ack");
    d.ack().await.expect("second ack is ok");
    d.nack().await.expect("nack after ack is ok");
    d.dead_letter("late")
        .await
        .expect("dead letter after ack is ok");
    assert_quiet(backend, &mut sub, "a nack after the ack redelivered").await;
    assert!(dead_letters(backend, &group).await.is_empty());
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

/// Dead letters are listed with an id, the event, the reason and the delivery
/// count; a replayed one is delivered again to its own group only, counting
/// from one; a discarded one is gone; ids already gone are skipped.
pub async fn dead_letters_replay_to_their_group_and_discard<B: TestBackend>(backend: &B) {
    let (group, other) = (unique_group("dlq"), unique_group("dlq-other"));
    let ty = kit_type("dead_letter_queue");
    let (_s, mut sub) = subscribe(backend, &group, &ty).await;
    let (_o, mut other_sub) = subscribe(backend, &other, &ty).await;
    let publisher = backend.publisher().await;
    let (first, second) = (raw_event(&ty, 1, None), raw_event(&ty, 2, None));
    for event in [&first, &second] {
        publisher.publish(event.clone()).await.expect("publish");
    }
    for _ in 0..2 {
        let d = next(backend, &mut sub).await;
        d.dead_letter("cannot process: test")
            .await
            .expect("dead_letter");
        next(backend, &mut other_sub)
            .await
            .ack()
            .await
            .expect("ack");
    }
    let dead = wait_dead_letters(backend, &group, 2).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let listed = |id: &str| {
        dead.iter()
            .find(|d| d.event().map(|e| e.id()) == Some(id))
            .unwrap_or_else(|| panic!("event {id} is listed: {dead:?}"))
            .clone()
    };
    let (d1, d2) = (listed(first.id()), listed(second.id()));
    assert_eq!(d1.reason, "cannot process: test");
    assert_eq!(d1.event().expect("an event").data, first.data);
    assert!(d1.deliveries >= 1, "delivered before: {}", d1.deliveries);
    assert_ne!(d1.id, d2.id, "every dead letter has its own id");

    let queue = backend.dead_letter_queue(&group);
    let got = queue.get(&d1.id).await.expect("get");
    assert_eq!(
        got.map(|d| d.reason),
        Some("cannot process: test".to_owned())
    );
    assert_eq!(
        queue
            .replay(std::slice::from_ref(&d1.id))
            .await
            .expect("replay"),
        1
    );
    let again = next(backend, &mut sub).await;
    assert_eq!(again.event().id(), first.id());
    assert_eq!(again.event().data, first.data);
    assert_eq!(again.attempt(), 1, "a replayed event counts from one again");
    again.ack().await.expect("ack");
    assert_quiet(
        backend,
        &mut other_sub,
        "a replay reached a group that had handled it",
    )
    .await;

    let gone = [d2.id.clone(), d1.id.clone()];
    assert_eq!(
        queue.discard(&gone).await.expect("discard"),
        1,
        "only d2 was left"
    );
    assert!(dead_letters(backend, &group).await.is_empty());
    assert_eq!(
        queue
            .replay(std::slice::from_ref(&d2.id))
            .await
            .expect("replay"),
        0
    );
    assert!(queue.get(&d2.id).await.expect("get").is_none());
    assert_quiet(backend, &mut sub, "a discarded dead letter came back").await;
}
