//! [`ResponseFuture`]: the inner service's future, a refusal ready to send,
//! or a validation still waiting for keys.

use http::{HeaderName, HeaderValue, Response};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a validation that waited for keys ends in.
pub(super) enum Outcome<F, B> {
    /// Call the inner service: this is its future, and a header to add
    /// to its response.
    Call(F, Option<(HeaderName, HeaderValue)>),
    /// Answer with this refusal.
    Respond(Response<B>),
}

pin_project! {
    /// The response future of [`Authn`](super::Authn).
    pub struct ResponseFuture<F, B, Err> {
        #[pin]
        state: State<F, B, Err>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, Err> {
        Inner { #[pin] future: F, header: Option<(HeaderName, HeaderValue)> },
        Validating { future: BoxFuture<Result<Outcome<F, B>, Err>> },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B, Err> ResponseFuture<F, B, Err> {
    pub(super) fn inner(future: F) -> Self {
        Self::inner_with(future, None)
    }
    /// The inner service's future, `header` added to its response.
    pub(super) fn inner_with(future: F, header: Option<(HeaderName, HeaderValue)>) -> Self {
        Self {
            state: State::Inner { future, header },
        }
    }
    pub(super) fn reject(response: Response<B>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
    pub(super) fn boxed(future: BoxFuture<Result<Outcome<F, B>, Err>>) -> Self {
        Self {
            state: State::Validating { future },
        }
    }
}

impl<F, B, Err> fmt::Debug for ResponseFuture<F, B, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, Err> Future for ResponseFuture<F, B, Err>
where
    F: Future<Output = Result<Response<B>, Err>>,
{
    type Output = Result<Response<B>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future, header } => {
                    let mut result = ready!(future.poll(cx));
                    if let (Ok(response), Some((name, value))) = (&mut result, header.take()) {
                        response.headers_mut().insert(name, value);
                    }
                    return Poll::Ready(result);
                }
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Validating { future } => match ready!(future.as_mut().poll(cx)) {
                    Ok(Outcome::Call(future, header)) => {
                        this.state.set(State::Inner { future, header });
                    }
                    Ok(Outcome::Respond(response)) => return Poll::Ready(Ok(response)),
                    Err(e) => return Poll::Ready(Err(e)),
                },
            }
        }
    }
}
