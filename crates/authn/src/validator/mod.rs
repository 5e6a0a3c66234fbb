//! [`JwtValidator`]: validates compact JWS access tokens against trusted issuers.
//!
//! ```
//! # tokio_test_shim::run(async {
//! use tessera_authn::{Issuer, JwtValidator, KeySet};
//!
//! let keys = KeySet::from_jwks(br#"{"keys":[]}"#)?;
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("my-api").keys(keys))
//!     .build()?;
//! // An unknown issuer, a bad signature, an expired token... all end in an error.
//! assert!(validator.validate("not.a.token").await.is_err());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # });
//! # mod tokio_test_shim { pub fn run<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
//! ```

mod builder;
mod issuer;
mod tenant;
mod verify;

pub use crate::cache::{DEFAULT_TOKEN_CACHE_BYTES, DEFAULT_TOKEN_CACHE_ENTRIES};
pub use builder::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, JwtValidatorBuilder};
pub use issuer::{DEFAULT_ALGORITHMS, Issuer, TokenTypes};
pub use tenant::TENANT_PLACEHOLDER;
pub use verify::JwtValidator;
pub(crate) use verify::Step;
