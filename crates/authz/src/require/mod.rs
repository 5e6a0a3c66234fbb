//! Guards as tower middleware: [`RequireScopes`], [`RequireRoles`] and
//! [`Require::policy`] build a [`RequireLayer`], usable with
//! `tower::ServiceBuilder`, as an axum `route_layer`, or around any
//! `Service<http::Request<B>>` (tonic, hyper).
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode, header::WWW_AUTHENTICATE};
//! use tessera_authn::{Claims, Principal};
//! use tessera_authz::RequireScopes;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(RequireScopes::all(["orders:write"]))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Bytes::from("created")))
//!     }));
//!
//! // No principal (no AuthnLayer in front): 401.
//! let res = service.clone().oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
//!
//! // A principal without the scope: 403, and the challenge names it.
//! let claims: Claims = serde_json::from_str(
//!     r#"{"iss":"https://idp.example","sub":"alice","exp":1900000000,"scope":"orders:read"}"#,
//! ).unwrap();
//! let mut req = Request::new(String::new());
//! req.extensions_mut().insert(Principal::new("https://idp.example", claims, "eyJ..."));
//! let res = service.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     res.headers()[WWW_AUTHENTICATE],
//!     r#"Bearer error="insufficient_scope", scope="orders:write""#,
//! );
//! # }
//! ```
//!
//! # Order
//!
//! A guard reads the `Principal` that `tessera_authn`'s `AuthnLayer` puts into
//! the request extensions, so it must run after it: in axum, add the authn
//! layer with `Router::layer` and the guards with `Router::route_layer` (or
//! put the guard innermost in a `ServiceBuilder`). Without a principal the
//! guard answers 401, never lets the request through.
//!
//! # Responses and body types
//!
//! Refusals are responses, never errors: the inner service's error type is
//! kept. By default ([`JsonBody`]) they carry a small JSON body, which needs a
//! response body type that is `From<Bytes>` (axum's `Body`,
//! `http_body_util::Full<Bytes>`, `Bytes`), as `tessera_authn`'s layer does. For body types that only
//! implement `Default` (boxed bodies, tonic), use
//! [`RequireLayer::empty_body`]; for your own format,
//! [`RequireLayer::render_with`]. See [`Rejection`](crate::Rejection) for the
//! exact statuses and challenges.
//!
//! Every refusal is a `tracing` event (target `tessera_authz`): INFO for a
//! denied principal, with the path, the reason, the required scopes and
//! roles, and the principal's subject and issuer; DEBUG for a request without
//! a principal. Never the token.

mod future;
mod layer;
mod render;
mod service;

pub use future::ResponseFuture;
pub use layer::{Require, RequireLayer, RequireRoles, RequireScopes};
pub use render::{EmptyBody, JsonBody, RenderRejection};
pub use service::RequireService;
