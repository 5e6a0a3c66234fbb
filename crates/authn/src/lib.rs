#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;
mod cache;
pub mod claims;
#[cfg(feature = "client")]
pub mod client;
#[cfg(any(feature = "client", feature = "introspection"))]
mod client_span;
pub mod confirmation;
#[cfg(feature = "dpop")]
pub mod dpop;
#[cfg(any(feature = "client", feature = "introspection"))]
mod endpoint;
pub mod error;
#[cfg(feature = "introspection")]
pub mod introspection;
#[cfg(feature = "remote")]
pub mod jwks;
pub mod keys;
pub mod mtls;
pub mod principal;
mod signature;
pub mod thumbprint;
mod time;
pub mod validator;

pub use claims::{Audience, Claims, ExtraClaims};
pub use confirmation::Confirmation;
pub use error::{AuthnError, ConfigError, DpopProofError, KeyError};
pub use jsonwebtoken::Algorithm;
#[cfg(feature = "remote")]
pub use jwks::{JwksCache, JwksOptions};
pub use keys::KeySet;
pub use mtls::{CertificateSource, ClientCertificate};
pub use principal::Principal;
pub use validator::{Issuer, JwtValidator, JwtValidatorBuilder, TENANT_PLACEHOLDER, TokenTypes};
pub mod layer;
pub use layer::{Authn, AuthnLayer, TokenLocation};
#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "test-util")]
pub mod test_util;

// docs/guides/authn.md, compiled as doctests so the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guides/authn.md")]
struct GuideAuthn;

// docs/service-to-service.md: mostly this crate's API (validator, client
// credentials, token exchange), with one tessera-authz guard.
#[cfg(all(doctest, feature = "client", feature = "introspection"))]
#[doc = include_str!("../../../docs/service-to-service.md")]
struct ServiceToServiceDoctests;
