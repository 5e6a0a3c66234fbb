//! A per-handler timeout as a tower layer: a handler running longer than its
//! limit fails with [`HandlerError::Timeout`], which is transient (retried).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tessera_event_bus::HandlerError;
//! use tessera_event_bus::router::TimeoutLayer;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(10)))
//!     .service(service_fn(|()| async {
//!         std::future::pending::<()>().await;
//!         Ok::<(), HandlerError>(())
//!     }));
//! let err = svc.oneshot(()).await.unwrap_err();
//! assert!(matches!(err, HandlerError::Timeout(_)));
//! # });
//! ```

use std::{
    future::Future as _,
    task::{Context, Poll},
    time::Duration,
};

use tower_layer::Layer;
use tower_service::Service;

use super::handler::{BoxFuture, HandlerError};

/// Applies [`Timeout`] to a service.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// Fails calls running longer than `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout::new(inner, self.limit)
    }
}

/// Fails a call with [`HandlerError::Timeout`] when it outlives its limit.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Timeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, consuming the wrapper.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for Timeout<S>
where
    S: Service<R, Response = (), Error = HandlerError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let fut = self.inner.call(req);
        let limit = self.limit;
        let deadline = tokio::time::Instant::now() + limit;
        Box::pin(async move {
            let mut fut = std::pin::pin!(fut);
            // A handler that finishes at its first poll needs no timer: most
            // of the cost of a timeout is registering and removing one.
            let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            if let Poll::Ready(result) = first {
                return result;
            }
            tokio::time::timeout_at(deadline, fut)
                .await
                .unwrap_or(Err(HandlerError::Timeout(limit)))
        })
    }
}
