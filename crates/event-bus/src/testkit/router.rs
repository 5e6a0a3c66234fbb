//! The consumer router on a backend: retries, dead letters, decoding,
//! unhandled types and graceful shutdown through the [`Router`], as a
//! service uses it. [`conformance_tests!`](crate::conformance_tests) turns
//! each case into a test; each panics with a message saying what broke.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_event_bus::testkit::{MemoryTestBackend, router};
//!
//! router::permanent_error_dead_letters_at_once(&MemoryTestBackend::new()).await;
//! # });
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use super::{
    TestBackend,
    support::{
        TypeName, assert_quiet, dead_letters, kit_type, next, raw_event, subscribe, unique_group,
        wait_dead_letters,
    },
};
use crate::{
    Envelope, EventContext, EventPublisher, HandlerError,
    router::{RetryPolicy, Router},
};

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
    assert!(dead_letters(backend, &group).await.is_empty());

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
    assert_eq!(dead[0].event().expect("a valid event").id(), id);
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
    assert_eq!(dead[0].event().expect("a valid event").id(), garbage.id());
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
        dead_letters(backend, &group).await.is_empty(),
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
