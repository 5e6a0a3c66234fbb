//! Routes: a handler wrapped in its middleware stack, as registered and as
//! the running router calls it.

use std::{sync::Arc, time::Duration};

use futures_util::future::Either;
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneService};
use tower_service::Service;

use super::{
    handler::{BoxFuture, DeliveryRequest, HandlerError},
    options::RouteOptions,
    retry::RetryPolicy,
    timeout::TimeoutLayer,
};
use crate::metrics;

/// The untyped handler service the router keeps per event type.
pub type RouteService = BoxCloneService<DeliveryRequest, (), HandlerError>;

/// Builds a route's middleware stack around its handler once the router's
/// defaults are known (at start): the retry policy, the timeout and the
/// concurrency limit in effect for it.
pub(super) type MakeStack =
    Box<dyn FnOnce(RetryPolicy, Option<Duration>, Option<usize>) -> RouteService + Send>;

/// A registered route: how to build its stack, and its own options.
pub(super) struct Route {
    pub(super) make: MakeStack,
    pub(super) options: RouteOptions,
    /// The handler is always ready (an async fn), so the stack is too unless
    /// it has a concurrency limit: deliveries call it without cloning it.
    pub(super) always_ready: bool,
}

/// Wraps a route's handler in its middleware, outermost first: concurrency
/// limit, retry, timeout. The stack is one concrete service boxed once, so a
/// delivery costs one boxed future, not one per layer.
pub(super) fn stack<S>(
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

/// A route as the running router keeps it: the middleware stack and the
/// route's metric handles (registered once, not per delivery).
pub(super) struct ActiveRoute {
    pub(super) service: RouteService,
    /// Whether `service` is ready at once, every time (see [`Route`]).
    pub(super) always_ready: bool,
    pub(super) metrics: Arc<metrics::RouteMetrics>,
}

/// A handler call under way: the stack's future, or, for a stack that may
/// not be ready, a clone of it waiting for readiness first.
pub(super) type RouteCall = Either<
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
    /// [`Router::spawn_handlers`](crate::Router::spawn_handlers) uses it to keep that work off the router's
    /// task.
    pub(super) fn call(&mut self, request: DeliveryRequest, deferred: bool) -> RouteCall {
        if self.always_ready && !deferred {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(Ok(())) = self.service.poll_ready(&mut cx) {
                return Either::Left(self.service.call(request));
            }
        }
        Either::Right(self.service.clone().oneshot(request))
    }
}
