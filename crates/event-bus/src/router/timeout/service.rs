//! [`Timeout`]: fails a call with [`HandlerError::Timeout`] when it outlives
//! its limit.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use tower_service::Service;

use super::future::ResponseFuture;
use crate::router::handler::HandlerError;

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
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        ResponseFuture::new(self.inner.call(req), self.limit)
    }
}
