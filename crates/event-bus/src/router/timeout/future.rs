//! [`ResponseFuture`]: the future of a [`Timeout`](super::Timeout) call.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use crate::router::handler::HandlerError;

pin_project_lite::pin_project! {
    /// The future of a [`Timeout`](super::Timeout) call: the inner call's result, or
    /// [`HandlerError::Timeout`] once the limit passed.
    ///
    /// A call that finishes at its first poll never registers a timer (most
    /// of the cost of a timeout is registering and removing one); the timer
    /// is made at the first poll that leaves the call pending, and still
    /// counts from the call.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        limit: Duration,
        deadline: tokio::time::Instant,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F> ResponseFuture<F> {
    /// Times `inner`, a call that starts now, out after `limit`.
    pub(super) fn new(inner: F, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: tokio::time::Instant::now() + limit,
            timer: None,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
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
