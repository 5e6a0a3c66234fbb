//! axum extractors for the principal and its claims (feature `axum`).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tessera_authn::{Claims, Principal};
//!
//! async fn me(principal: Principal) -> String {
//!     principal.subject().unwrap_or("anonymous").to_owned()
//! }
//!
//! async fn maybe(principal: Option<Principal>) -> &'static str {
//!     if principal.is_some() { "signed in" } else { "anonymous" }
//! }
//!
//! async fn claims(claims: Claims) -> String {
//!     claims.iss
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/maybe", get(maybe))
//!     .route("/claims", get(claims));
//! // Put `AuthnLayer` around the router for the extractors to find a principal.
//! ```

use crate::claims::Claims;
use crate::principal::Principal;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use std::convert::Infallible;

/// Rejection when no principal is in the request: the route is not behind
/// [`AuthnLayer`](crate::AuthnLayer), or the layer is optional and the
/// request was anonymous. Answers 401 with a `Bearer` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no authenticated principal")]
#[non_exhaustive]
pub struct MissingPrincipal;

impl IntoResponse for MissingPrincipal {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"unauthorized","error_description":"missing bearer token"}"#,
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

impl<S, E> FromRequestParts<S> for Principal<E>
where
    S: Send + Sync,
    E: Send + Sync + 'static,
{
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal<E>>()
            .cloned()
            .ok_or(MissingPrincipal)
    }
}

impl<S, E> OptionalFromRequestParts<S> for Principal<E>
where
    S: Send + Sync,
    E: Send + Sync + 'static,
{
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal<E>>().cloned())
    }
}

impl<S, E> FromRequestParts<S> for Claims<E>
where
    S: Send + Sync,
    E: Clone + Send + Sync + 'static,
{
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal<E>>()
            .map(|p| p.claims().clone())
            .ok_or(MissingPrincipal)
    }
}
