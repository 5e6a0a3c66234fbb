//! [`ResponseFuture`]: the response future of [`Provision`](super::Provision).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tessera_event_bus::router::BoxFuture;

pin_project! {
    /// Response future of [`Provision`](super::Provision): the inner
    /// service's future for a known subject or a request without one, else
    /// the registration followed by the inner service's future (or the
    /// refusal).
    pub struct ResponseFuture<F, T, E> {
        #[pin]
        kind: Kind<F, T, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T, E> {
        PassedOn {
            #[pin]
            future: F,
        },
        Provisioning {
            future: BoxFuture<Result<T, E>>,
        },
    }
}

impl<F, T, E> ResponseFuture<F, T, E> {
    pub(super) fn passed_on(future: F) -> Self {
        Self {
            kind: Kind::PassedOn { future },
        }
    }

    pub(super) fn provisioning(future: BoxFuture<Result<T, E>>) -> Self {
        Self {
            kind: Kind::Provisioning { future },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::PassedOn { future } => future.poll(cx),
            KindProj::Provisioning { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, T, E> fmt::Debug for ResponseFuture<F, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
