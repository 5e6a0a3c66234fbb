//! [`InjectToken`]: the service that sends each request with a token (a
//! DPoP proof too for a bound one), and once more with a fresh token after
//! an `invalid_token` refusal, or with the nonce after `use_dpop_nonce`.

use super::body::ReplayBody;
use super::error::InjectTokenError;
use crate::client::authorization::{Refusal, authorize, refusal};
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
            let mut token = provider.token().await.map_err(InjectTokenError::Token)?;
            let method = req.method().as_str().to_owned();
            let url = req.uri().to_string();
            let mut replay = copy(&req);
            authorize(req.headers_mut(), &method, &url, &token).map_err(InjectTokenError::Token)?;
            let mut response = inner.call(req).await.map_err(InjectTokenError::Inner)?;
            // At most one retry for each reason: a fresh token, a nonce.
            let (mut fresh_token, mut nonce) = (false, false);
            loop {
                let retry = match refusal(&token, &url, response.status(), response.headers()) {
                    Some(Refusal::InvalidToken) if !fresh_token => {
                        tracing::debug!(
                            target: "tessera_authn::client",
                            "downstream refused the token; retrying once with a fresh one"
                        );
                        fresh_token = true;
                        provider.invalidate(&token);
                        token = provider.token().await.map_err(InjectTokenError::Token)?;
                        true
                    }
                    Some(Refusal::UseDpopNonce) if !nonce => {
                        tracing::debug!(
                            target: "tessera_authn::client",
                            "downstream asked for a DPoP nonce; retrying once with it"
                        );
                        nonce = true;
                        true
                    }
                    _ => false,
                };
                let Some(mut again) = replay.take().filter(|_| retry) else {
                    return Ok(response);
                };
                replay = copy(&again);
                authorize(again.headers_mut(), &method, &url, &token)
                    .map_err(InjectTokenError::Token)?;
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(InjectTokenError::Inner)?;
                response = inner.call(again).await.map_err(InjectTokenError::Inner)?;
            }
        })
    }
}

/// A copy of `req` to send again, when its body can be replayed.
fn copy<B: ReplayBody>(req: &Request<B>) -> Option<Request<B>> {
    req.body().try_clone().map(|body| {
        let mut copy = Request::new(body);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        copy
    })
}
