//! [`Router`]: its settings and the handlers it routes to, by event type.

use std::{collections::HashMap, fmt, future::Future, sync::Arc, time::Duration};

use tower_service::Service;

use super::{
    error::RouterError,
    handle::RouterHandle,
    handler::{Decoding, EventContext, EventRequest, HandlerError, handler_fn},
    options::RouteOptions,
    retry::RetryPolicy,
    route::{MakeStack, Route, RouteService, stack},
};
use crate::{Codec, Envelope, Event, JsonCodec, Subscriber};

/// Routes deliveries of one consumer group to handlers by event type.
#[must_use]
pub struct Router<C = JsonCodec> {
    pub(super) subscriber: Arc<dyn Subscriber>,
    pub(super) group: String,
    pub(super) source: Option<String>,
    pub(super) codec: Arc<C>,
    pub(super) routes: HashMap<String, Route>,
    pub(super) retry: RetryPolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) concurrency: usize,
    pub(super) spawn: bool,
    pub(super) prefetch: u16,
    pub(super) shutdown_timeout: Duration,
    #[cfg(feature = "otel")]
    pub(super) producer_as_parent: bool,
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
            #[cfg(feature = "otel")]
            producer_as_parent: false,
        }
    }

    /// Makes each delivery's `process` span a child of the producer's span
    /// (feature `otel`), so the request that published the event and the
    /// handler are one trace. By default the process span starts a trace of
    /// its own and links to the producer's span, as the OpenTelemetry
    /// messaging conventions recommend for consumers.
    #[cfg(feature = "otel")]
    pub fn producer_as_parent(mut self) -> Self {
        self.producer_as_parent = true;
        self
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
    /// faster (1.7x in the in-memory benchmark when this was measured: 354k
    /// against 208k events/s; CHANGELOG.md, performance history).
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
        Ok(RouterHandle::spawn(self.prepare().await?))
    }

    /// Subscribes and runs until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RouterError> {
        self.prepare().await?.run(shutdown).await
    }
}
