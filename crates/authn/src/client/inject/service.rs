//! [`InjectToken`]: the service that sends each request with a token, and
//! once more with a fresh one after an `invalid_token` refusal.

use super::body::ReplayBody;
use super::error::InjectTokenError;
use crate::client::bearer::{bearer_value, is_invalid_token};
use crate::client::token::{BoxFuture, TokenProvider};
use http::{Request, Response};
use std::fmt;
use std::task::{Context, Poll};
use tower_service::Service;

/// The service built by [`InjectTokenLayer`](super::layer::InjectTokenLayer).
#[derive(Clone)]
pub struct InjectToken<S, P> {
    inner: S,
    provider: P,
}

impl<S: fmt::Debug, P> fmt::Debug for InjectToken<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectToken")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, P> InjectToken<S, P> {
    /// Wraps `inner`.
    pub fn new(inner: S, provider: P) -> Self {
        Self { inner, provider }
    }

    define_inner_service_accessors!();
}

impl<S, P, B, RB> Service<Request<B>> for InjectToken<S, P>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    P: TokenProvider + Clone + 'static,
    B: ReplayBody + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = InjectTokenError<S::Error>;
    type Future = BoxFuture<'static, Result<Response<RB>, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(InjectTokenError::Inner)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        crate::client_span::propagate(req.headers_mut());
        // The ready service goes with this request; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let provider = self.provider.clone();
        Box::pin(async move {
            let token = provider.token().await.map_err(InjectTokenError::Token)?;
            let value = bearer_value(&token).map_err(InjectTokenError::Token)?;
            let replay = req.body().try_clone().map(|body| {
                let mut copy = Request::new(body);
                *copy.method_mut() = req.method().clone();
                *copy.uri_mut() = req.uri().clone();
                *copy.version_mut() = req.version();
                *copy.headers_mut() = req.headers().clone();
                *copy.extensions_mut() = req.extensions().clone();
                copy
            });
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
            let response = inner.call(req).await.map_err(InjectTokenError::Inner)?;
            let Some(mut retry) = replay else {
                return Ok(response);
            };
            if !is_invalid_token(response.status(), response.headers()) {
                return Ok(response);
            }
            tracing::debug!(
                target: "tessera_authn::client",
                "downstream refused the token; retrying once with a fresh one"
            );
            provider.invalidate(&token);
            let fresh = provider.token().await.map_err(InjectTokenError::Token)?;
            let value = bearer_value(&fresh).map_err(InjectTokenError::Token)?;
            retry
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(InjectTokenError::Inner)?;
            inner.call(retry).await.map_err(InjectTokenError::Inner)
        })
    }
}
