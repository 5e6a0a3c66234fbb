//! [`AuthnLayer`]: the tower middleware that lets only requests with a valid
//! bearer token through.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tessera_authn::{AuthnLayer, Issuer, JwtValidator, KeySet};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("api").keys(KeySet::default()))
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(AuthnLayer::new(validator).realm("orders"))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::from("secret")))
//!     });
//!
//! let response = service.oneshot(Request::new(Full::<Bytes>::default())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="orders""#);
//! # Ok(()) }
//! ```

// `layer::layer`, as tower-http names its middleware folders' files.
mod binding;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod refusal;
mod service;
pub(crate) mod token;
mod trace;

pub use future::ResponseFuture;
pub use layer::AuthnLayer;
pub use refusal::{Grpc, Http, Refusal};
pub use service::Authn;
pub use token::{DEFAULT_MAX_HEADER_LEN, TokenLocation};
