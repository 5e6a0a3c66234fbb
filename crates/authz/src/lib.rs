//! Scope, role and permission guards for principals validated by
//! [`tessera_authn`]: tower layers and axum route layers, and policies checked
//! inside handlers.
//!
//! ```
//! use axum::{Extension, Router, body::Body, routing::get};
//! use http::{Request, StatusCode, header::WWW_AUTHENTICATE};
//! use tessera_authn::{Claims, Principal};
//! use tessera_authz::RequireScopes;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/admin", get(|| async { "welcome" }))
//!     .route_layer(RequireScopes::all(["admin"])) // guards the routes above
//!     .route("/healthz", get(|| async { "ok" }));
//!
//! // In a service, tessera_authn's AuthnLayer validates the bearer token and
//! // puts the Principal into the request extensions. Here we put one there by hand.
//! let with_scope = |scope: &str| {
//!     let claims: Claims = serde_json::from_value(serde_json::json!({
//!         "iss": "https://idp.example", "sub": "alice", "exp": 1900000000, "scope": scope,
//!     })).unwrap();
//!     Extension(Principal::new("https://idp.example", claims, "eyJ..."))
//! };
//! let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
//!
//! let res = app.clone().layer(with_scope("read admin")).oneshot(get("/admin")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // `administrator` is not `admin`: matching is exact.
//! let res = app.clone().layer(with_scope("administrator")).oneshot(get("/admin")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer error="insufficient_scope", scope="admin""#);
//!
//! // No principal at all: 401. Unguarded routes stay open.
//! let res = app.clone().oneshot(get("/admin")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let res = app.oneshot(get("/healthz")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```
//!
//! # Pieces
//!
//! - [`permissions`]: where a token keeps its permissions. [`PermissionSource`]
//!   and ready mappings for `scope`, `scp`, Auth0 `permissions`, Keycloak
//!   `realm_access.roles` / `resource_access.<client>.roles`, `roles`, and any
//!   claim path. Matching is exact and case-sensitive; claims of the wrong
//!   JSON type grant nothing.
//! - [`require`]: the guards. [`RequireScopes::all`] / [`any`](RequireScopes::any),
//!   [`RequireRoles::all`] / [`any`](RequireRoles::any) with
//!   [`.from(mapping)`](RequireLayer::from), and [`Require::policy`] for any
//!   [`Policy`]. 401 without a principal, 403 with an RFC 6750
//!   `insufficient_scope` challenge when the policy denies.
//! - [`policy`]: the [`Policy`] trait, combinators ([`policy::all`],
//!   [`policy::any`], [`policy::not`], closures) and resource rules
//!   ([`policy::subject_is`]) for [`ensure`] inside handlers.
//! - [`rejection`]: [`Forbidden`] and [`Rejection`], and how they render.
//!
//! Every denial is a `tracing` event (target `tessera_authz`) with the reason
//! and the required scopes or roles, never the token.
//!
//! # Resource rules in handlers
//!
//! Some rules need the resource: only the author edits a comment. Check them
//! with [`ensure`], which returns [`Forbidden`]; with the `axum` feature,
//! `Forbidden` is an `IntoResponse` (403), so handlers use `?`:
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # mod example {
//! use axum::{Extension, extract::Path};
//! use tessera_authn::Principal;
//! use tessera_authz::{Forbidden, ensure, policy};
//!
//! async fn edit_comment(
//!     Extension(principal): Extension<Principal>,
//!     Path(id): Path<u64>,
//! ) -> Result<&'static str, Forbidden> {
//!     let author = load_author(id);
//!     ensure(&principal, policy::subject_is(&author))?;
//!     Ok("edited")
//! }
//! # fn load_author(_: u64) -> String { "alice".into() }
//! # }
//! ```
//!
//! # Features
//!
//! - `axum`: `IntoResponse` for [`Forbidden`] and [`Rejection`]. The layers
//!   need no feature: they work for any `http::Request<B>`.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod permissions;
pub mod policy;
pub mod rejection;
pub mod require;

pub use permissions::PermissionSource;
pub use policy::{Policy, ensure};
pub use rejection::{Forbidden, Rejection};
pub use require::{
    EmptyBody, JsonBody, RenderRejection, Require, RequireLayer, RequireRoles, RequireScopes,
    RequireService,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// docs/guides/authz.md, compiled as doctests so the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guides/authz.md")]
struct GuideAuthz;
