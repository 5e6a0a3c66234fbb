//! The router's loop: subscribe, fetch deliveries while there is room,
//! start each one's handler, and shut down gracefully.

use std::{future::Future, sync::Arc, time::Duration};

use futures_util::future::Either;

use super::{
    builder::Router,
    dispatch::dispatch,
    error::RouterError,
    route::{ActiveRoute, Route},
    spans::DeliverySpans,
};
use crate::{Codec, Delivery, SubscribeOptions, Subscription, metrics};

impl<C: Codec> Router<C> {
    /// Subscribes and builds each route's stack with the router's defaults.
    pub(super) async fn prepare(self) -> Result<Running, RouterError> {
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
        let spans = DeliverySpans {
            messaging: self.subscriber.messaging(),
            #[cfg(feature = "otel")]
            producer_as_parent: self.producer_as_parent,
        };
        Ok(Running {
            spans,
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

/// A subscribed router, ready to run its loop.
pub(super) struct Running {
    subscription: Box<dyn Subscription>,
    /// Sorted by event type: a binary search finds a delivery's route
    /// without hashing its type.
    routes: Vec<(String, ActiveRoute)>,
    group: Arc<str>,
    source: Arc<str>,
    spans: DeliverySpans,
    concurrency: usize,
    spawn: bool,
    shutdown_timeout: Duration,
}

impl Running {
    pub(super) async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RouterError> {
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
        let work = dispatch(
            delivery,
            route,
            &self.group,
            &self.source,
            &self.spans,
            self.spawn,
        );
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
