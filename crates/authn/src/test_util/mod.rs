//! A test issuer: generates keys, serves OIDC discovery and a JWKS on an
//! ephemeral loopback port, mints tokens with any claims and algorithm, and
//! rotates keys. Our own tests use it; yours can too (feature `test-util`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_authn::test_util::TestIssuer;
//! use tessera_authn::{Algorithm, AuthnError, Issuer, JwtValidator};
//!
//! let idp = TestIssuer::start().await?; // one RS256 key
//! idp.add_key(Algorithm::ES256)?;         // and an ES256 key, published before the first fetch
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new(idp.issuer()).audience(idp.audience()).discovery())
//!     .build()?;
//!
//! let token = idp.token().subject("alice").claim("scope", "read").sign();
//! let principal = validator.validate(&token).await?;
//! assert_eq!(principal.subject(), Some("alice"));
//!
//! let expired = idp.token().expires_in_secs(-3600).sign();
//! assert_eq!(validator.validate(&expired).await.unwrap_err(), AuthnError::Expired);
//!
//! let es256 = idp.token().alg(Algorithm::ES256).sign();
//! assert!(validator.validate(&es256).await.is_ok());
//! # Ok(()) }
//! ```

mod builder;
mod dpop;
mod issuer;
mod key;
mod oauth;
mod server;
mod token;
mod trust;

pub use builder::TestIssuerBuilder;
pub use dpop::{DpopKey, ProofBuilder};
pub use issuer::{TestIssuer, TestIssuerError};
pub use key::alg_name;
pub use oauth::{ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, TestClient, TestUser};
pub use token::TokenBuilder;
