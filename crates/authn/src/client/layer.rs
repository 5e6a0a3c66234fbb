//! [`InjectTokenLayer`]: adds `Authorization: Bearer` to outgoing requests.

use super::{AccessToken, ClientError, TokenProvider, is_invalid_token};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A request body that can be copied for one retry. Bodies that cannot
/// (streams) answer `None`, and their requests are not retried.
pub trait ReplayBody: Sized {
    /// A copy of the body, if it can be made without consuming it.
    fn try_clone(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($ty:ty),*) => {$(
        impl ReplayBody for $ty {
            fn try_clone(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

replay_by_clone!((), String, Vec<u8>, Bytes, &'static str);

impl<D: Clone> ReplayBody for http_body_util::Full<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for http_body_util::Empty<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(Self::new())
    }
}

impl ReplayBody for reqwest::Body {
    fn try_clone(&self) -> Option<Self> {
        self.as_bytes().map(|b| Self::from(b.to_vec()))
    }
}

/// Why an outgoing request failed: no token, or the inner service's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InjectTokenError<E> {
    /// No token could be obtained; the request was not sent.
    #[error("no token for the outgoing request: {0}")]
    Token(#[source] ClientError),
    /// The inner service failed.
    #[error(transparent)]
    Inner(E),
}

/// Adds `Authorization: Bearer <token>` from a [`TokenProvider`] to every
/// request; on a 401 `error="invalid_token"` answer, invalidates the token
/// and retries once with a fresh one when the body can be replayed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use http::{Request, Response};
/// use tessera_authn::client::{InjectTokenLayer, TokenRelay};
/// use tessera_authn::{Claims, Principal};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// let claims: Claims = serde_json::from_value(serde_json::json!({
///     "iss": "https://idp.example", "exp": 4_000_000_000_i64,
/// }))?;
/// let relay = TokenRelay::from_principal(&Principal::new("https://idp.example", claims, "abc"));
/// let client = ServiceBuilder::new()
///     .layer(InjectTokenLayer::new(relay))
///     .service_fn(|req: Request<String>| async move {
///         let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
///         Ok::<_, std::convert::Infallible>(Response::new(auth))
///     });
/// let response = client.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.body(), "Bearer abc");
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct InjectTokenLayer<P> {
    provider: P,
}

impl<P> fmt::Debug for InjectTokenLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectTokenLayer").finish_non_exhaustive()
    }
}

impl<P> InjectTokenLayer<P> {
    /// Injects tokens from `provider`.
    pub fn new(provider: P) -> Self {
        Self { provider }
    }
}

impl<S, P: Clone> Layer<S> for InjectTokenLayer<P> {
    type Service = InjectToken<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        InjectToken {
            inner,
            provider: self.provider.clone(),
        }
    }
}

/// The service built by [`InjectTokenLayer`].
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

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

pub(crate) fn bearer_value(token: &AccessToken) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
        .map_err(|_| ClientError::InvalidResponse("token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

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
    type Future = BoxFuture<Result<Response<RB>, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(InjectTokenError::Inner)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
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
