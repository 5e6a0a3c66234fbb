//! [`InjectTokenLayer`]: the tower `Layer` wrapping an outgoing client in
//! [`InjectToken`].

use super::service::InjectToken;
use std::fmt;
use tower_layer::Layer;

/// Adds `Authorization: Bearer <token>` from a
/// [`TokenProvider`](crate::client::TokenProvider) to every
/// request (for a DPoP-bound token, `Authorization: DPoP <token>` and a
/// fresh `DPoP` proof for the request's method and absolute URI); on a 401
/// `error="invalid_token"` answer, invalidates the token and retries once
/// with a fresh one when the body can be replayed, and on a 401
/// `error="use_dpop_nonce"`, once with a proof echoing the nonce.
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
        InjectToken::new(inner, self.provider.clone())
    }
}
