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
//! - `DpopSigner` (feature `dpop`): sender-constrained tokens (RFC 9449).
//!   `ClientCredentials` with a signer asks for DPoP-bound tokens (a proof on
//!   the token request, the `use_dpop_nonce` retry), and the two above send
//!   them as `Authorization: DPoP` with a fresh proof per request.
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

mod authorization;
pub(crate) mod credentials;
#[cfg(feature = "dpop")]
mod dpop_nonces;
#[cfg(feature = "dpop")]
mod dpop_signer;
mod error;
pub(crate) mod exchange;
mod inject;
mod oauth_http;
mod policy;
mod relay;
mod reqwest;
pub(crate) mod slot;
mod token;
mod token_endpoint;

pub use crate::endpoint::AuthMethod;
pub use credentials::{ClientCredentials, ClientCredentialsBuilder, TokenRequest};
#[cfg(feature = "dpop")]
pub use dpop_signer::DpopSigner;
pub use error::ClientError;
pub use exchange::{ExchangedToken, TokenExchange, TokenExchangeBuilder};
pub use inject::{InjectToken, InjectTokenError, InjectTokenLayer, ReplayBody};
pub use policy::{RefreshAhead, RetryPolicy};
pub use relay::TokenRelay;
pub use reqwest::AuthorizedClient;
pub use token::{AccessToken, BoxFuture, TokenProvider};
