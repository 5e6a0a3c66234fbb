//! [`TokenRelay`]: forwards the caller's validated token downstream.

use super::error::ClientError;
use super::token::{AccessToken, BoxFuture, TokenProvider};
use crate::principal::Principal;

/// A [`TokenProvider`] that sends the caller's own token on, for gateways
/// whose downstream services trust the same issuer and audience.
///
/// Built from the [`Principal`] the incoming [`AuthnLayer`](crate::AuthnLayer)
/// validated, so only a validated token is ever relayed; once the token
/// has expired, `token()` fails with [`ClientError::SubjectExpired`] instead
/// of sending it. When the downstream expects another audience, use
/// [`TokenExchange`](super::TokenExchange) instead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tessera_authn::client::{TokenProvider, TokenRelay};
/// use tessera_authn::{Claims, Principal};
///
/// let claims: Claims = serde_json::from_value(serde_json::json!({
///     "iss": "https://idp.example", "sub": "alice", "exp": 4_000_000_000_i64,
/// })).unwrap();
/// let principal = Principal::new("https://idp.example", claims, "caller.token.jwt");
/// let relay = TokenRelay::from_principal(&principal);
/// assert_eq!(relay.token().await.unwrap().secret(), "caller.token.jwt");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokenRelay {
    token: AccessToken,
    exp: i64,
}

impl TokenRelay {
    /// Relays the principal's bearer token until its `exp`.
    pub fn from_principal<E>(principal: &Principal<E>) -> Self {
        Self {
            token: AccessToken::new(principal.bearer_token()),
            exp: principal.claims().exp,
        }
    }
}

impl TokenProvider for TokenRelay {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>> {
        let result = if self.exp <= crate::time::now() {
            Err(ClientError::SubjectExpired)
        } else {
            Ok(self.token.clone())
        };
        Box::pin(std::future::ready(result))
    }
}
