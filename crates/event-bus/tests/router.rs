//! Router behaviour on the in-memory backend beyond the conformance kit.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Envelope, EventContext, EventPublisher, HandlerError, Router, SubscribeOptions, Subscriber,
    memory::{MemoryBus, MemoryConfig},
    router::{EventRequest, RetryPolicy, RouteOptions, RouterError},
    trace_context::TraceContext,
};
use tokio::sync::{Notify, mpsc};

const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserDeleted {
    user_id: String,
}
tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CommentsAnonymised {
    user_id: String,
}
tessera_event_bus::event!(CommentsAnonymised => "com.example.comments.anonymised.v1", subject = user_id);

/// Publishes a `UserDeleted` for each of `users`, in order.
async fn publish_deleted(bus: &MemoryBus, users: impl IntoIterator<Item = impl Into<String>>) {
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/users");
    for user in users {
        events
            .publish(UserDeleted {
                user_id: user.into(),
            })
            .await
            .unwrap();
    }
}

/// The next `n` messages of `rx`, each within [`PATIENCE`].
async fn receive<T>(rx: &mut mpsc::UnboundedReceiver<T>, n: usize) -> Vec<T> {
    let mut received = Vec::with_capacity(n);
    for _ in 0..n {
        received.push(
            tokio::time::timeout(PATIENCE, rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    received
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::exponential()
        .max_attempts(attempts)
        .min_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
}

async fn wait_for_dead_letters(
    bus: &MemoryBus,
    group: &str,
) -> Vec<tessera_event_bus::memory::DeadLetter> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let dead = bus.dead_letters(group);
            if !dead.is_empty() {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a dead letter in time")
}

#[tokio::test]
async fn a_router_without_handlers_does_not_start() {
    let bus = MemoryBus::new();
    let err = Router::new(Arc::new(bus.subscriber()), "g")
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, RouterError::NoHandlers));
    assert_eq!(err.to_string(), "the router has no handlers");
}

#[tokio::test]
async fn a_failing_subscribe_is_reported_at_start() {
    let bus = MemoryBus::new();
    let subscriber = bus.subscriber();
    subscriber.close().await.unwrap();
    let err = Router::new(Arc::new(subscriber), "g")
        .handle(|_: Envelope<UserDeleted>, _: EventContext| async { Ok(()) })
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, RouterError::Subscribe(_)), "{err}");
}

#[tokio::test]
async fn follow_up_events_carry_correlation_causation_and_trace() {
    let bus = MemoryBus::new();
    let publisher = EventPublisher::new(Arc::new(bus.publisher()), "/comment-service");
    let follow_ups = publisher.clone();
    let router = Router::new(Arc::new(bus.subscriber()), "comment-service")
        .source("/comment-service")
        .handle(move |env: Envelope<UserDeleted>, ctx: EventContext| {
            let events = follow_ups.clone();
            async move {
                let done = ctx.follow_up(CommentsAnonymised {
                    user_id: env.into_data().user_id,
                });
                events
                    .publish_envelope(&done)
                    .await
                    .map_err(HandlerError::transient)
            }
        })
        .start()
        .await
        .unwrap();
    let mut audit = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("audit").event_type(CommentsAnonymised::TYPE_NAME))
        .await
        .unwrap();

    let incoming = publisher
        .envelope(UserDeleted {
            user_id: "u1".into(),
        })
        .with_correlation_id("request-17");
    let mut incoming = incoming;
    incoming
        .attributes_mut()
        .set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    incoming.attributes_mut().set_tracestate("vendor=1");
    publisher.publish_envelope(&incoming).await.unwrap();

    let d = tokio::time::timeout(PATIENCE, audit.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let a = &d.event().attributes;
    assert_eq!(a.source, "/comment-service");
    assert_eq!(a.correlation_id(), Some("request-17"));
    assert_eq!(a.causation_id(), Some(incoming.id()));
    assert_eq!(a.subject.as_deref(), Some("u1"));
    let trace = TraceContext::from_attributes(a).expect("follow-up has a traceparent");
    assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(trace.span_id(), "00f067aa0ba902b7");
    assert_eq!(trace.tracestate(), Some("vendor=1"));
    d.ack().await.unwrap();
    router.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_handler_times_out_is_retried_then_dead_lettered() {
    let bus = MemoryBus::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let router = Router::new(Arc::new(bus.subscriber()), "g")
        .retry(fast_retry(2))
        .handle_with(
            move |_: Envelope<UserDeleted>, _: EventContext| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                    Ok(())
                }
            },
            RouteOptions::new().timeout(Duration::from_millis(10)),
        )
        .start()
        .await
        .unwrap();
    publish_deleted(&bus, ["u1"]).await;
    let dead = wait_for_dead_letters(&bus, "g").await;
    router.shutdown().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        dead[0].reason,
        "gave up after 2 attempts: handler timed out after 10ms"
    );
}

#[derive(Clone)]
struct CountingService {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    done: mpsc::UnboundedSender<()>,
}

impl tower::Service<EventRequest<UserDeleted>> for CountingService {
    type Response = ();
    type Error = HandlerError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), HandlerError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: EventRequest<UserDeleted>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let now = this.running.fetch_add(1, Ordering::SeqCst) + 1;
            this.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            this.running.fetch_sub(1, Ordering::SeqCst);
            let _ = this.done.send(());
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_tower_service_handler_respects_its_concurrency_limit() {
    let bus = MemoryBus::new();
    let (done, mut finished) = mpsc::unbounded_channel();
    let service = CountingService {
        running: Arc::new(AtomicUsize::new(0)),
        peak: Arc::new(AtomicUsize::new(0)),
        done,
    };
    let peak = Arc::clone(&service.peak);
    let router = Router::new(Arc::new(bus.subscriber()), "g")
        .concurrency(8)
        .handle_service::<UserDeleted, _>(service, RouteOptions::new().concurrency(2))
        .start()
        .await
        .unwrap();
    publish_deleted(&bus, (0..20).map(|n| format!("u{n}"))).await;
    receive(&mut finished, 20).await;
    router.shutdown().await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "peak concurrency {peak} exceeds the route's limit of 2"
    );
}

/// The default (inline) router, or one spawning a task per delivery.
fn router(bus: &MemoryBus, spawn: bool) -> Router {
    let router = Router::new(Arc::new(bus.subscriber()), "g");
    if spawn {
        router.spawn_handlers()
    } else {
        router
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_handlers_are_called_on_their_own_tasks_inline_ones_on_the_routers() {
    // The handler's synchronous part (and the decoding before it) runs on
    // the task a delivery runs on: with `spawn_handlers`, its own task, so
    // heavy work there spreads over the cores too.
    assert_eq!(tasks_calling_the_handler(true).await.len(), 3);
    assert_eq!(tasks_calling_the_handler(false).await.len(), 1);
}

async fn tasks_calling_the_handler(spawn: bool) -> std::collections::HashSet<tokio::task::Id> {
    let bus = MemoryBus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = router(&bus, spawn)
        .handle(move |_: Envelope<UserDeleted>, _: EventContext| {
            let _ = tx.send(tokio::task::try_id().expect("called on a task"));
            async { Ok(()) }
        })
        .start()
        .await
        .unwrap();
    publish_deleted(&bus, ["u1", "u2", "u3"]).await;
    let tasks = receive(&mut rx, 3).await;
    router.shutdown().await.unwrap();
    tasks.into_iter().collect()
}

#[tokio::test]
async fn the_router_processes_no_more_than_its_concurrency() {
    processes_no_more_than_its_concurrency(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_spawning_handlers_processes_no_more_than_its_concurrency() {
    processes_no_more_than_its_concurrency(true).await;
}

async fn processes_no_more_than_its_concurrency(spawn: bool) {
    let bus = MemoryBus::new();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
    let router = router(&bus, spawn)
        .concurrency(3)
        .handle(move |_: Envelope<UserDeleted>, _: EventContext| {
            let (r, p, tx) = (Arc::clone(&r), Arc::clone(&p), tx.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(());
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    publish_deleted(&bus, (0..30).map(|n| format!("u{n}"))).await;
    receive(&mut rx, 30).await;
    router.shutdown().await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 3, "{peak} handlers ran at once, the limit is 3");
    assert!(peak >= 2, "handlers ran one at a time, not concurrently");
    assert_eq!(bus.queued("g") + bus.in_flight("g"), 0, "every event acked");
}

#[tokio::test]
async fn a_panicking_handler_dead_letters_its_event_and_the_router_keeps_going() {
    panicking_handler(false, false).await;
}

#[tokio::test]
async fn a_handler_panicking_before_its_future_dead_letters_its_event_and_the_router_keeps_going() {
    // The router calls handlers on its own task: a panic in the call itself
    // (not in the future it returns) must not take the router down either.
    panicking_handler(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_spawned_handler_dead_letters_its_event_and_the_router_keeps_going() {
    panicking_handler(true, false).await;
}

async fn panicking_handler(spawn: bool, in_call: bool) {
    let bus = MemoryBus::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = router(&bus, spawn)
        .retry(fast_retry(3))
        .handle(move |env: Envelope<UserDeleted>, _: EventContext| {
            let tx = tx.clone();
            if in_call {
                assert_ne!(env.data().user_id, "boom", "a bug in the handler");
            }
            async move {
                let user = env.into_data().user_id;
                assert_ne!(user, "boom", "a bug in the handler");
                let _ = tx.send(user);
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    publish_deleted(&bus, ["boom", "u1"]).await;
    let handled = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap();
    assert_eq!(handled.as_deref(), Some("u1"));
    let dead = wait_for_dead_letters(&bus, "g").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].deliveries, 1, "dead-lettered at once, not retried");
    assert!(
        dead[0].reason.contains("the handler panicked")
            && dead[0].reason.contains("a bug in the handler"),
        "{}",
        dead[0].reason
    );
    assert!(router.health().is_up(), "the router survives the panic");
    router.shutdown().await.unwrap();
    assert_eq!(bus.queued("g") + bus.in_flight("g"), 0);
}

#[tokio::test]
async fn handlers_outliving_the_shutdown_deadline_are_abandoned_and_redelivered() {
    abandoned_at_the_deadline(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_handlers_outliving_the_shutdown_deadline_are_aborted_and_redelivered() {
    abandoned_at_the_deadline(true).await;
}

async fn abandoned_at_the_deadline(spawn: bool) {
    let bus = MemoryBus::new();
    let started = Arc::new(Notify::new());
    let s = Arc::clone(&started);
    let router = router(&bus, spawn)
        .shutdown_timeout(Duration::from_millis(20))
        .handle(move |_: Envelope<UserDeleted>, _: EventContext| {
            let s = Arc::clone(&s);
            async move {
                s.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let id = EventPublisher::new(Arc::new(bus.publisher()), "/users")
        .publish(UserDeleted {
            user_id: "u1".into(),
        })
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, started.notified())
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, router.shutdown())
        .await
        .unwrap()
        .unwrap();

    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("g").event_type(UserDeleted::TYPE_NAME))
        .await
        .unwrap();
    let d = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.event().id(), id);
    assert_eq!(d.attempt(), 2);
}

#[tokio::test]
async fn health_is_down_once_the_subscription_ends() {
    let bus = MemoryBus::new();
    let subscriber = Arc::new(bus.subscriber());
    let router = Router::new(subscriber.clone(), "g")
        .handle(|_: Envelope<UserDeleted>, _: EventContext| async { Ok(()) })
        .start()
        .await
        .unwrap();
    assert!(router.health().is_up());
    subscriber.close().await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        while router.health().is_up() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("router notices the closed subscription");
    router.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_poison_event_that_crashes_consumers_ends_in_dead_letters() {
    // No router involved: a consumer that never settles (it crashes) and the
    // backend's delivery limit stop the loop.
    let bus = MemoryBus::with_config(MemoryConfig::default().max_deliveries(3));
    let subscriber = bus.subscriber();
    let mut sub = subscriber
        .subscribe(SubscribeOptions::new("g").event_type(UserDeleted::TYPE_NAME))
        .await
        .unwrap();
    publish_deleted(&bus, ["u1"]).await;
    for attempt in 1..=3 {
        let d = tokio::time::timeout(PATIENCE, sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(d.attempt(), attempt);
        drop(d);
    }
    let next = tokio::time::timeout(Duration::from_millis(50), sub.next()).await;
    assert!(next.is_err(), "no fourth delivery");
    assert_eq!(
        bus.dead_letters("g")[0].reason,
        "delivery limit of 3 reached"
    );
}

trait TypeName {
    const TYPE_NAME: &'static str;
}
impl<E: tessera_event_bus::Event> TypeName for E {
    const TYPE_NAME: &'static str = E::TYPE;
}
