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
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tower_layer::Layer;
use tower_service::Service;

use super::handler::HandlerError;

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

    define_inner_service_accessors!();
}

impl<S, R> Service<R> for Timeout<S>
where
    S: Service<R, Response = (), Error = HandlerError>,
{
    type Response = ();
    type Error = HandlerError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(req),
            limit: self.limit,
            deadline: tokio::time::Instant::now() + self.limit,
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Timeout`] call: the inner call's result, or
    /// [`HandlerError::Timeout`] once the limit passed.
    ///
    /// A call that finishes at its first poll never registers a timer (most
    /// of the cost of a timeout is registering and removing one); the timer
    /// is made at the first poll that leaves the call pending, and still
    /// counts from the call.
    #[must_use = "futures do nothing unless polled"]
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        limit: Duration,
        deadline: tokio::time::Instant,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F> fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<(), HandlerError>>,
{
    type Output = Result<(), HandlerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        let deadline = *this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(HandlerError::Timeout(*this.limit))),
            Poll::Pending => Poll::Pending,
        }
    }
}
