//! Outgoing tokens for service-to-service calls (feature `client`).
//!
//! - [`ClientCredentials`]: an OAuth 2.0 client credentials token provider
//!   (RFC 6749 §4.4, on the `oauth2` crate): one cached token per
//!   (audience, scopes), refreshed ahead of expiry, single flight (a thousand
//!   concurrent callers cause one token request), transient failures retried
//!   with backoff, OAuth error codes as typed errors.
//! - [`InjectTokenLayer`]: a tower layer for outgoing HTTP clients that adds
//!   `Authorization: Bearer` from any [`TokenProvider`]; [`AuthorizedClient`]
//!   does the same for a `reqwest::Client`. Both drop the cached token and
//!   retry once when the downstream answers 401 `error="invalid_token"` and
//!   the body can be replayed.
//! - [`TokenRelay`]: forwards the caller's validated token (gateways).
//! - [`TokenExchange`]: RFC 8693, trades the caller's token for one scoped to
//!   a downstream audience, cached per (subject token hash, audience, scopes).
//!
//! Secrets and tokens never appear in `Debug` output, errors or logs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_authn::client::ClientCredentials;
//! use tessera_authn::test_util::{TestClient, TestIssuer};
//!
//! let idp = TestIssuer::start().await?;
//! idp.add_client(TestClient::new("orders", "s3cret").scopes(["billing:read"]).audiences(["billing"]));
//!
//! let credentials = ClientCredentials::builder("orders", "s3cret")
//!     .discovery(idp.issuer())
//!     .scope("billing:read")
//!     .build()?;
//! let token = credentials.token().await?;
//! assert_eq!(credentials.token().await?.secret(), token.secret()); // cached
//! assert_eq!(idp.token_requests(), 1);
//! assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
//! # Ok(()) }
//! ```

mod bearer;
mod credentials;
mod exchange;
mod inject;
mod oauth_http;
mod policy;
mod relay;
mod reqwest;
mod slot;
mod token_endpoint;

pub use crate::endpoint::AuthMethod;
pub use credentials::{ClientCredentials, ClientCredentialsBuilder, TokenRequest};
pub use exchange::{ExchangedToken, TokenExchange, TokenExchangeBuilder};
pub use inject::{InjectToken, InjectTokenError, InjectTokenLayer, ReplayBody};
pub use policy::{RefreshAhead, RetryPolicy};
pub use relay::TokenRelay;
pub use reqwest::AuthorizedClient;

use crate::error::Redacted;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An access token to send downstream. Cheap to clone; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }

    /// The token itself. Never log it.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccessToken").field(&Redacted).finish()
    }
}

/// A source of bearer tokens for outgoing requests.
///
/// `token` returns a token to send now (cached providers answer from their
/// cache); `invalidate` tells the provider the downstream refused that token
/// (401 `invalid_token`), so the next `token` call must not return it.
pub trait TokenProvider: Send + Sync {
    /// A token for the next request.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>>;

    /// Drops `token` from the provider's cache, if it is still there.
    fn invalidate(&self, token: &AccessToken) {
        let _ = token;
    }
}

impl<P: TokenProvider + ?Sized> TokenProvider for Arc<P> {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>> {
        (**self).token()
    }

    fn invalidate(&self, token: &AccessToken) {
        (**self).invalidate(token);
    }
}

/// Why no token could be obtained.
///
/// Messages never contain secrets or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is invalid (bad URL, empty client id...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The authorization server refused the request with an RFC 6749 §5.2
    /// error (`invalid_client`, `invalid_scope`, `invalid_grant`...).
    #[error("token endpoint refused the request: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code.
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The endpoint could not be reached or answered with a server error
    /// (after the retries).
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    /// The endpoint answered with something that is not a usable token
    /// response.
    #[error("invalid token endpoint response: {0}")]
    InvalidResponse(String),
    /// OIDC discovery of the endpoint failed.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The token to relay or exchange has expired.
    #[error("subject token expired")]
    SubjectExpired,
}

impl ClientError {
    /// The OAuth `error` code, when the authorization server sent one.
    #[must_use]
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether retrying later may succeed (network errors, 5xx, 429,
    /// `temporarily_unavailable`, discovery failures).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Discovery(_) => true,
            Self::OAuth { code, .. } => code == "temporarily_unavailable" || code == "server_error",
            _ => false,
        }
    }

    pub(crate) fn from_post(error: crate::endpoint::PostError) -> Self {
        use crate::endpoint::PostError;
        match error {
            PostError::Unreachable(e) => Self::Unavailable(e),
            PostError::Status(s) => Self::Unavailable(format!("status {s}")),
            PostError::OAuth {
                status,
                code,
                description,
            } => Self::OAuth {
                status,
                code,
                description,
            },
            PostError::Unexpected(s) => Self::InvalidResponse(format!("status {s}")),
            PostError::Body(e) => Self::InvalidResponse(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_expose_codes_and_transience() {
        let e = ClientError::OAuth {
            status: 400,
            code: "invalid_scope".into(),
            description: Some("nope".into()),
        };
        assert_eq!(e.oauth_error(), Some("invalid_scope"));
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "token endpoint refused the request: invalid_scope (nope)"
        );
        assert!(ClientError::Unavailable("x".into()).is_transient());
    }
}
