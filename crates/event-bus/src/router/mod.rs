//! The consumer router: handlers by event type, tower middleware, graceful shutdown.
//!
//! A [`Router`] joins a consumer group, subscribes to the event types it has
//! handlers for, and for each delivery:
//!
//! 1. opens a tracing span (`tessera.event`) with the event's type, id,
//!    group, attempt and the W3C trace ids from its `traceparent`;
//! 2. finds the handler for the event type; a type without a handler is
//!    acked and counted in `tessera_events_unhandled_total`;
//! 3. runs the handler's middleware, outermost first: optional concurrency
//!    limit ([`RouteOptions::concurrency`]), retry with exponential backoff
//!    and jitter ([`RetryPolicy`]), per-attempt timeout ([`TimeoutLayer`]),
//!    decoding into the handler's event type, the handler;
//! 4. acks on success; dead-letters with the reason on a permanent error, an
//!    undecodable payload, or transient errors that outlived the retries.
//!
//! At most [`Router::concurrency`] deliveries are processed at once; the
//! router fetches a delivery only when it has room for it. Handlers run
//! concurrently on the router's own task (no task spawn per delivery, which
//! doubles throughput for short handlers); with [`Router::spawn_handlers`]
//! each delivery gets its own task instead, so handlers that compute for
//! long spread over every core. A handler that panics dead-letters its
//! event with the panic message; the router keeps running. Shutdown stops
//! fetching, lets in-flight handlers finish (and ack) within
//! [`Router::shutdown_timeout`], then closes the subscription; handlers
//! still running at the deadline are abandoned and their events redelivered.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{sync::Arc, time::Duration};
//! use serde::{Deserialize, Serialize};
//! use tokio::sync::mpsc;
//! use tessera_event_bus::{Envelope, EventContext, EventPublisher, HandlerError, Router};
//! use tessera_event_bus::memory::MemoryBus;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct UserDeleted { user_id: String }
//! tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
//!
//! let bus = MemoryBus::new();
//! let (tx, mut rx) = mpsc::unbounded_channel();
//! let router = Router::new(Arc::new(bus.subscriber()), "comment-service")
//!     .timeout(Duration::from_secs(5))
//!     .handle(move |env: Envelope<UserDeleted>, _ctx: EventContext| {
//!         let tx = tx.clone();
//!         async move {
//!             tx.send(env.into_data().user_id).map_err(HandlerError::permanent)
//!         }
//!     })
//!     .start()
//!     .await
//!     .unwrap();
//!
//! let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! events.publish(UserDeleted { user_id: "u1".into() }).await.unwrap();
//! assert_eq!(rx.recv().await.as_deref(), Some("u1"));
//! router.shutdown().await.unwrap();
//! # });
//! ```

mod handler;
mod retry;
mod timeout;

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{FutureExt as _, future::Either};
use tokio::sync::oneshot;
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneService};
use tower_service::Service;
use tracing::Instrument as _;

use self::handler::Decoding;
pub use self::{
    handler::{
        BoxFuture, DeliveryRequest, EventContext, EventRequest, HandlerError, HandlerFn, handler_fn,
    },
    retry::RetryPolicy,
    timeout::{Timeout, TimeoutLayer},
};
use crate::{
    Codec, Delivery, Envelope, Event, Health, JsonCodec, SubscribeOptions, Subscriber,
    Subscription, error::BusError, metrics,
};

/// The untyped handler service the router keeps per event type.
pub type RouteService = BoxCloneService<DeliveryRequest, (), HandlerError>;

/// Per-handler settings that override the router's defaults.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RouteOptions {
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    concurrency: Option<usize>,
}

impl RouteOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// The retry policy of this handler.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The timeout of each attempt of this handler.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// How many deliveries this handler processes at once (within the router's limit).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit.max(1));
        self
    }
}

/// Builds a route's middleware stack around its handler once the router's
/// defaults are known (at start): the retry policy, the timeout and the
/// concurrency limit in effect for it.
type MakeStack =
    Box<dyn FnOnce(RetryPolicy, Option<Duration>, Option<usize>) -> RouteService + Send>;

struct Route {
    make: MakeStack,
    options: RouteOptions,
    /// The handler is always ready (an async fn), so the stack is too unless
    /// it has a concurrency limit: deliveries call it without cloning it.
    always_ready: bool,
}

/// Why a router could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// No handler was registered, so there is nothing to subscribe to.
    #[error("the router has no handlers")]
    NoHandlers,
    /// Subscribing failed.
    #[error("could not subscribe: {0}")]
    Subscribe(#[source] BusError),
    /// The subscription failed for good while running.
    #[error("the subscription failed: {0}")]
    Subscription(#[source] BusError),
    /// The router task panicked or was cancelled.
    #[error("the router task ended abnormally: {0}")]
    Task(String),
}

/// Routes deliveries of one consumer group to handlers by event type.
#[must_use]
pub struct Router<C = JsonCodec> {
    subscriber: Arc<dyn Subscriber>,
    group: String,
    source: Option<String>,
    codec: Arc<C>,
    routes: HashMap<String, Route>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    concurrency: usize,
    spawn: bool,
    prefetch: u16,
    shutdown_timeout: Duration,
}

impl<C: Codec> fmt::Debug for Router<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<_> = self.routes.keys().collect();
        types.sort();
        f.debug_struct("Router")
            .field("group", &self.group)
            .field("event_types", &types)
            .field("codec", &self.codec)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Router<JsonCodec> {
    /// A router for consumer `group` reading JSON events from `subscriber`.
    pub fn new(subscriber: Arc<dyn Subscriber>, group: impl Into<String>) -> Self {
        Self::with_codec(subscriber, group, JsonCodec)
    }
}

impl<C: Codec> Router<C> {
    /// A router decoding event data with `codec`.
    pub fn with_codec(subscriber: Arc<dyn Subscriber>, group: impl Into<String>, codec: C) -> Self {
        Self {
            subscriber,
            group: group.into(),
            source: None,
            codec: Arc::new(codec),
            routes: HashMap::new(),
            retry: RetryPolicy::exponential(),
            timeout: Some(Duration::from_secs(30)),
            concurrency: 16,
            spawn: false,
            prefetch: 100,
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    /// The `source` of events handlers publish through
    /// [`EventContext::follow_up`]; default `/<group>`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The default retry policy (default: [`RetryPolicy::exponential`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The default timeout of each handler attempt (default 30 s).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// No default handler timeout.
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// How many deliveries are processed at once (default 16, at least 1).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Runs each delivery on its own tokio task instead of concurrently on
    /// the router's task (the default).
    ///
    /// Worth it when handlers compute for long (a task per delivery lets them
    /// use every core); for handlers that mostly wait on I/O, the default is
    /// about twice as fast (docs/benchmarks.md).
    pub fn spawn_handlers(mut self) -> Self {
        self.spawn = true;
        self
    }

    /// The prefetch window asked of the backend (default 100).
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// How long shutdown waits for in-flight handlers (default 30 s).
    pub fn shutdown_timeout(mut self, limit: Duration) -> Self {
        self.shutdown_timeout = limit;
        self
    }

    /// Registers an async fn handler for `E`.
    pub fn handle<E, F, Fut>(self, handler: F) -> Self
    where
        E: Event,
        F: Fn(Envelope<E>, EventContext) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.typed_route::<E, _>(handler_fn(handler), RouteOptions::new(), true)
    }

    /// Registers an async fn handler for `E` with its own options.
    pub fn handle_with<E, F, Fut>(self, handler: F, options: RouteOptions) -> Self
    where
        E: Event,
        F: Fn(Envelope<E>, EventContext) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.typed_route::<E, _>(handler_fn(handler), options, true)
    }

    /// Registers a `tower::Service` handler for `E`; replaces any earlier handler of `E`.
    pub fn handle_service<E, S>(self, service: S, options: RouteOptions) -> Self
    where
        E: Event,
        S: Service<EventRequest<E>, Response = (), Error = HandlerError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        self.typed_route::<E, S>(service, options, false)
    }

    fn typed_route<E, S>(self, service: S, options: RouteOptions, always_ready: bool) -> Self
    where
        E: Event,
        S: Service<EventRequest<E>, Response = (), Error = HandlerError> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let decoding = Decoding::<S, E, C>::new(service, Arc::clone(&self.codec));
        self.route(
            E::TYPE.to_owned(),
            Box::new(move |retry, timeout, limit| stack(decoding, retry, timeout, limit)),
            options,
            always_ready,
        )
    }

    /// Registers an untyped handler for an event type name; it gets the raw event.
    pub fn handle_raw(
        self,
        event_type: impl Into<String>,
        service: RouteService,
        options: RouteOptions,
    ) -> Self {
        self.route(
            event_type.into(),
            Box::new(move |retry, timeout, limit| stack(service, retry, timeout, limit)),
            options,
            false,
        )
    }

    fn route(
        mut self,
        event_type: String,
        make: MakeStack,
        options: RouteOptions,
        always_ready: bool,
    ) -> Self {
        let route = Route {
            make,
            options,
            always_ready,
        };
        self.routes.insert(event_type, route);
        self
    }

    /// Subscribes, then runs in a background task until the returned handle's
    /// [`shutdown`](RouterHandle::shutdown). Events published after this
    /// returns reach the group.
    pub async fn start(self) -> Result<RouterHandle, RouterError> {
        let (stop, stopped) = oneshot::channel::<()>();
        let state = Arc::new(AtomicU8::new(RUNNING));
        let running = self.prepare().await?;
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let result = running
                .run(async {
                    // A dropped handle also stops the router.
                    let _ = stopped.await;
                })
                .await;
            task_state.store(STOPPED, Ordering::Release);
            result
        });
        Ok(RouterHandle {
            stop: Some(stop),
            task,
            state,
        })
    }

    /// Subscribes and runs until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RouterError> {
        self.prepare().await?.run(shutdown).await
    }

    async fn prepare(self) -> Result<Running, RouterError> {
        if self.routes.is_empty() {
            return Err(RouterError::NoHandlers);
        }
        let mut types: Vec<String> = self.routes.keys().cloned().collect();
        types.sort();
        let options = SubscribeOptions::new(self.group.clone())
            .event_types(types)
            .prefetch(self.prefetch);
        let subscription = self
            .subscriber
            .subscribe(options)
            .await
            .map_err(RouterError::Subscribe)?;
        let mut routes: Vec<(String, ActiveRoute)> = self
            .routes
            .into_iter()
            .map(|(ty, route)| {
                let Route {
                    make,
                    options,
                    always_ready,
                } = route;
                let retry = options.retry.unwrap_or_else(|| self.retry.clone());
                let limit = options.concurrency;
                let service = make(retry, options.timeout.or(self.timeout), limit);
                let always_ready = always_ready && limit.is_none();
                let metrics = Arc::new(metrics::RouteMetrics::new(&ty, &self.group));
                (
                    ty,
                    ActiveRoute {
                        service,
                        always_ready,
                        metrics,
                    },
                )
            })
            .collect();
        routes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let source = self.source.unwrap_or_else(|| format!("/{}", self.group));
        Ok(Running {
            subscription,
            routes,
            group: Arc::from(self.group),
            source: Arc::from(source),
            concurrency: self.concurrency,
            spawn: self.spawn,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// Wraps a route's handler in its middleware, outermost first: concurrency
/// limit, retry, timeout. The stack is one concrete service boxed once, so a
/// delivery costs one boxed future, not one per layer.
fn stack<S>(
    service: S,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    concurrency: Option<usize>,
) -> RouteService
where
    S: Service<DeliveryRequest, Response = (), Error = HandlerError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    BoxCloneService::new(
        ServiceBuilder::new()
            // ConcurrencyLimit is Clone and its clones share one semaphore.
            .option_layer(concurrency.map(tower::limit::ConcurrencyLimitLayer::new))
            .layer(retry.into_layer())
            .option_layer(timeout.map(TimeoutLayer::new))
            .service(service),
    )
}

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;

/// A route as the running router keeps it: the middleware stack and the
/// route's metric handles (registered once, not per delivery).
struct ActiveRoute {
    service: RouteService,
    /// Whether `service` is ready at once, every time (see [`Route`]).
    always_ready: bool,
    metrics: Arc<metrics::RouteMetrics>,
}

/// A handler call under way: the stack's future, or, for a stack that may
/// not be ready, a clone of it waiting for readiness first.
type RouteCall = Either<
    BoxFuture<Result<(), HandlerError>>,
    tower::util::Oneshot<RouteService, DeliveryRequest>,
>;

impl ActiveRoute {
    /// Starts the handler on `request`.
    ///
    /// A stack that is always ready is called in place: no clone of it per
    /// delivery. Any other is cloned and driven to readiness inside the
    /// returned future, so a full concurrency limit or a handler service
    /// that is not ready holds back this delivery only, never the router.
    /// With `deferred` the call itself (decoding, the handler's synchronous
    /// part) happens in the returned future too, on whichever task polls it:
    /// [`Router::spawn_handlers`] uses it to keep that work off the router's
    /// task.
    fn call(&mut self, request: DeliveryRequest, deferred: bool) -> RouteCall {
        if self.always_ready && !deferred {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(Ok(())) = self.service.poll_ready(&mut cx) {
                return Either::Left(self.service.call(request));
            }
        }
        Either::Right(self.service.clone().oneshot(request))
    }
}

/// A subscribed router, ready to run its loop.
struct Running {
    subscription: Box<dyn Subscription>,
    /// Sorted by event type: a binary search finds a delivery's route
    /// without hashing its type.
    routes: Vec<(String, ActiveRoute)>,
    group: Arc<str>,
    source: Arc<str>,
    concurrency: usize,
    spawn: bool,
    shutdown_timeout: Duration,
}

impl Running {
    async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RouterError> {
        use futures_util::StreamExt as _;
        tokio::pin!(shutdown);
        let mut inflight = futures_util::stream::FuturesUnordered::new();
        let mut failure = None;
        'run: loop {
            // Deliveries the backend has at hand are taken without a future each.
            while inflight.len() < self.concurrency
                && let Some(delivery) = self.subscription.try_next()
            {
                inflight.push(self.start(delivery));
            }
            // Fetch only with room to process, so unfetched events stay with the backend.
            if inflight.len() >= self.concurrency {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'run,
                    Some(()) = inflight.next() => continue 'run,
                }
            }
            // One fetch, kept while handlers finish meanwhile: cancelling and
            // remaking it at every finished handler costs the backend work
            // (lapin's consumer re-registers its listener each time).
            let mut fetch = self.subscription.next();
            let fetched = loop {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'run,
                    Some(()) = inflight.next(), if !inflight.is_empty() => {}
                    next = &mut fetch => break next,
                }
            };
            drop(fetch);
            match fetched {
                Ok(Some(delivery)) => inflight.push(self.start(delivery)),
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(%error, group = %self.group, "subscription failed");
                    failure = Some(RouterError::Subscription(error));
                    break;
                }
            }
        }
        let all_done = async { while inflight.next().await.is_some() {} };
        if tokio::time::timeout(self.shutdown_timeout, all_done)
            .await
            .is_err()
        {
            tracing::warn!(
                group = %self.group,
                abandoned = inflight.len(),
                "shutdown deadline passed; abandoned handlers' events will be redelivered"
            );
            // Dropping cancels inline handlers and aborts spawned ones.
            drop(inflight);
        }
        if let Err(error) = self.subscription.close().await {
            tracing::warn!(%error, group = %self.group, "closing the subscription failed");
        }
        failure.map_or(Ok(()), Err)
    }

    /// Starts processing `delivery`: on the router's task, or on its own
    /// with [`Router::spawn_handlers`].
    fn start(
        &mut self,
        delivery: Delivery,
    ) -> Either<Spawned, impl Future<Output = ()> + Send + use<>> {
        let ty = delivery.event().event_type();
        let route = match self.routes.binary_search_by(|(t, _)| t.as_str().cmp(ty)) {
            Ok(index) => Some(&mut self.routes[index].1),
            Err(_) => None,
        };
        let work = dispatch(delivery, route, &self.group, &self.source, self.spawn);
        if self.spawn {
            Either::Left(Spawned(tokio::spawn(work)))
        } else {
            Either::Right(work)
        }
    }
}

/// A handler task spawned by [`Router::spawn_handlers`]: resolves when the
/// task ends (a panic inside is caught by [`dispatch`] already) and aborts
/// the task when dropped (at the shutdown deadline).
struct Spawned(tokio::task::JoinHandle<()>);

impl Future for Spawned {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Handles one delivery and settles it.
///
/// The handler is called here, inside the delivery's span (or, when
/// `deferred`, at the returned future's first poll), and the returned
/// future drives it and settles the delivery.
fn dispatch(
    delivery: Delivery,
    route: Option<&mut ActiveRoute>,
    group: &Arc<str>,
    source: &Arc<str>,
    deferred: bool,
) -> impl Future<Output = ()> + Send + use<> {
    let event = Arc::clone(delivery.shared_event());
    let context = EventContext::for_delivery(
        Arc::clone(group),
        Arc::clone(source),
        Arc::clone(&event),
        delivery.attempt(),
    );
    let span = tracing::info_span!(
        "tessera.event",
        otel.kind = "consumer",
        event.r#type = event.event_type(),
        event.id = event.id(),
        event.subject = event.subject(),
        group = &**group,
        attempt = delivery.attempt(),
        trace_id = %context.trace_context().trace_id(),
        span_id = %context.trace_context().span_id(),
        parent_span_id = crate::trace_context::TraceContext::from_attributes(&event.attributes)
            .map(|parent| parent.span_id()),
    );
    let started = Instant::now();
    let call = route.map(|route| {
        let _entered = span.enter();
        route.metrics.delivered();
        let request = DeliveryRequest::new(Arc::clone(&event), context);
        // A panic is a bug in the handler: retrying would panic again, so the
        // event goes to the dead letters with the message, and the router lives on.
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route.call(request, deferred)
        }))
        .map_err(|panic| HandlerError::permanent(panic_message(&*panic)));
        (call, Arc::clone(&route.metrics))
    });
    let group = Arc::clone(group);
    async move {
        let ty = event.event_type();
        let Some((call, metrics)) = call else {
            metrics::delivered(ty, &group);
            metrics::unhandled(ty, &group);
            tracing::debug!("no handler for this event type; acking");
            settle(delivery.ack().await, "ack");
            return;
        };
        let result = match call {
            Ok(call) => std::panic::AssertUnwindSafe(call)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(HandlerError::permanent(panic_message(&*panic)))),
            Err(panicked) => Err(panicked),
        };
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                settle(delivery.ack().await, "ack");
                metrics.handled(seconds);
            }
            Err(error) => {
                metrics.duration(seconds);
                tracing::warn!(%error, kind = error.kind(), "handler failed; dead-lettering");
                settle(delivery.dead_letter(error.to_string()).await, "dead-letter");
                metrics::dead_lettered(ty, &group, error.kind());
            }
        }
    }
    .instrument(span)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("the handler panicked: {message}")
}

fn settle(result: Result<(), BusError>, what: &str) {
    if let Err(error) = result {
        // The backend redelivers an event whose settlement failed.
        tracing::warn!(%error, "could not {what} the delivery; it will be redelivered");
    }
}

/// Controls a router started with [`Router::start`].
///
/// Dropping the handle shuts the router down too, without waiting.
#[derive(Debug)]
pub struct RouterHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RouterError>>,
    state: Arc<AtomicU8>,
}

impl RouterHandle {
    /// Stops fetching, waits for in-flight handlers (up to the shutdown
    /// timeout), closes the subscription, and returns how the router ended.
    pub async fn shutdown(mut self) -> Result<(), RouterError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| RouterError::Task(e.to_string()))?
    }

    /// Up while the router runs, down once it stopped (for example because
    /// the subscription was closed).
    pub fn health(&self) -> Health {
        match self.state.load(Ordering::Acquire) {
            RUNNING if !self.task.is_finished() => Health::up(),
            _ => Health::down("router stopped"),
        }
    }
}
