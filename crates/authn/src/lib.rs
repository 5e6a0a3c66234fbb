//! Tower middleware validating OAuth 2.0 / OIDC JWT access tokens.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod claims;
pub mod error;
#[cfg(feature = "remote")]
pub mod jwks;
pub mod keys;
pub mod principal;
pub mod validator;

pub use claims::{Audience, Claims, ExtraClaims};
pub use error::{AuthnError, ConfigError, KeyError};
#[cfg(feature = "remote")]
pub use jwks::{JwksCache, JwksOptions};
pub use jsonwebtoken::Algorithm;
pub use keys::KeySet;
pub use principal::Principal;
pub use validator::{Issuer, JwtValidator, JwtValidatorBuilder, TokenTypes};
pub mod layer;
pub use layer::{Authn, AuthnLayer, TokenLocation};
#[cfg(feature = "test-util")]
pub mod test_util;
#[cfg(feature = "axum")]
pub mod extract;
