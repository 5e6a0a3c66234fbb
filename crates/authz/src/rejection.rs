//! Why a request was refused, and how that is answered: [`Forbidden`] (403)
//! and [`Rejection`] (401 or 403).
//!
//! ```
//! use http::{StatusCode, header::WWW_AUTHENTICATE};
//! use tessera_authz::Forbidden;
//!
//! let forbidden = Forbidden::new("the token lacks a required scope").with_scopes(["orders:write"]);
//! let res: http::Response<bytes::Bytes> = forbidden.into_http_response();
//!
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     res.headers()[WWW_AUTHENTICATE],
//!     r#"Bearer error="insufficient_scope", scope="orders:write""#,
//! );
//! assert_eq!(
//!     res.body(),
//!     r#"{"error":"insufficient_scope","error_description":"the token lacks a required scope"}"#,
//! );
//! ```
//!
//! # What the client sees
//!
//! - 401 when no principal is present (no `AuthnLayer` ran, or it let an
//!   anonymous request through): `WWW-Authenticate: Bearer`, with no error
//!   code (RFC 6750 §3.1: the request carried no credentials we accept), and
//!   the body `{"error":"unauthorized","error_description":"authentication required"}`
//!   (the same shape as `tessera_authn`'s answer to a missing token).
//! - 403 when a policy denies: `WWW-Authenticate: Bearer
//!   error="insufficient_scope"`, with `scope="..."` listing the scopes the
//!   guard requires (RFC 6750 §3) when the denial is about scopes, and the
//!   body `{"error":"insufficient_scope","error_description":"<reason>"}`.
//!   Required role names are not sent to the client (they describe your
//!   authorization model, unlike scopes, which clients request by name); they
//!   are in the `tracing` event.
//!
//! Nothing from the token is ever part of a response.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use std::borrow::Cow;
use std::fmt;
use tessera_authn::Principal;

/// A policy denied the request: answered with 403 Forbidden.
///
/// Returned by [`Policy::check`](crate::Policy::check) and
/// [`ensure`](crate::ensure). It carries a reason (a short text written by
/// the policy's author, sent to the client as `error_description` and
/// logged) and the scopes or roles that would have been enough (scopes go into
/// the challenge; both are logged).
///
/// With the `axum` feature it implements `IntoResponse`, so handlers can
/// return `Result<_, Forbidden>` and use `?`. Without axum,
/// [`into_http_response`](Self::into_http_response) builds the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("forbidden: {reason}")]
pub struct Forbidden {
    reason: Cow<'static, str>,
    scopes: Vec<String>,
    roles: Vec<String>,
}

impl Forbidden {
    /// A denial for `reason`, e.g. `"only the author may edit a comment"`.
    ///
    /// The reason is sent to the client: say what is missing, not anything
    /// about the caller's token.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            scopes: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// Adds scopes that would have allowed the request; they are listed in
    /// the challenge's `scope` attribute.
    #[must_use]
    pub fn with_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        push_unique(&mut self.scopes, scopes);
        self
    }

    /// Adds roles that would have allowed the request; they are logged, not
    /// sent to the client.
    #[must_use]
    pub fn with_roles<I>(mut self, roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        push_unique(&mut self.roles, roles);
        self
    }

    /// Why the request was denied.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The scopes that would have allowed the request (empty when the denial
    /// is not about scopes).
    #[must_use]
    pub fn required_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The roles that would have allowed the request (empty when the denial
    /// is not about roles).
    #[must_use]
    pub fn required_roles(&self) -> &[String] {
        &self.roles
    }

    /// Merges the requirements of `other` into `self` (for "any of"
    /// policies: each alternative would have been enough).
    pub(crate) fn absorb(&mut self, other: &Self) {
        push_unique(&mut self.scopes, &other.scopes);
        push_unique(&mut self.roles, &other.roles);
    }

    /// 403 Forbidden.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    /// The `WWW-Authenticate` challenge:
    /// `Bearer error="insufficient_scope"`, followed by
    /// `, scope="<required scopes>"` when scopes are required.
    ///
    /// Scope names that are not valid RFC 6749 scope tokens (spaces, quotes,
    /// backslashes, non-ASCII) are left out of the attribute, so the header
    /// is always well formed.
    #[must_use]
    pub fn www_authenticate(&self) -> HeaderValue {
        const BASE: &str = r#"Bearer error="insufficient_scope""#;
        let mut scopes = self.scopes.iter().filter(|s| is_scope_token(s)).peekable();
        if scopes.peek().is_none() {
            return HeaderValue::from_static(BASE);
        }
        let mut value = String::from(BASE);
        value.push_str(", scope=\"");
        for (i, scope) in scopes.enumerate() {
            if i > 0 {
                value.push(' ');
            }
            value.push_str(scope);
        }
        value.push('"');
        // Only scope-token characters were added: visible ASCII, no quote.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(BASE))
    }

    /// The JSON body: `{"error":"insufficient_scope","error_description":"<reason>"}`.
    #[must_use]
    pub fn json_body(&self) -> String {
        serde_json::json!({
            "error": "insufficient_scope",
            "error_description": self.reason,
        })
        .to_string()
    }

    /// The 403 response with the challenge and the JSON body, for any body
    /// type that can be made from `Bytes` (`axum::body::Body`,
    /// `http_body_util::Full<Bytes>`, `Bytes`, ...), as `tessera_authn`'s
    /// layer requires too.
    #[must_use]
    pub fn into_http_response<B: From<Bytes>>(self) -> Response<B> {
        Rejection::Forbidden(self).into_http_response()
    }
}

fn push_unique<I>(list: &mut Vec<String>, items: I)
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    for item in items {
        let item = item.as_ref();
        if !list.iter().any(|s| s == item) {
            list.push(item.to_owned());
        }
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Why a guard refused a request: no principal (401) or a denying policy
/// (403).
///
/// Guards hand it to their [`RenderRejection`](crate::RenderRejection) to
/// build the response; with the `axum` feature it implements `IntoResponse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No principal in the request extensions: the request was not
    /// authenticated. Answered with 401 and `WWW-Authenticate: Bearer`.
    #[error("no authenticated principal")]
    Unauthenticated,
    /// A policy denied the request. Answered with 403.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
}

impl Rejection {
    /// 401 Unauthorized or 403 Forbidden.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(f) => f.status(),
        }
    }

    /// The `WWW-Authenticate` challenge: `Bearer` for 401 (no error code,
    /// RFC 6750 §3.1), [`Forbidden::www_authenticate`] for 403.
    #[must_use]
    pub fn www_authenticate(&self) -> HeaderValue {
        match self {
            Self::Unauthenticated => HeaderValue::from_static("Bearer"),
            Self::Forbidden(f) => f.www_authenticate(),
        }
    }

    /// The small JSON body (see the [module docs](self)).
    #[must_use]
    pub fn json_body(&self) -> String {
        match self {
            Self::Unauthenticated => {
                r#"{"error":"unauthorized","error_description":"authentication required"}"#
                    .to_owned()
            }
            Self::Forbidden(f) => f.json_body(),
        }
    }

    /// The response with status, challenge and JSON body, for any body type
    /// that can be made from `Bytes`.
    #[must_use]
    pub fn into_http_response<B: From<Bytes>>(self) -> Response<B> {
        let mut res = self.empty_response(B::from(Bytes::from(self.json_body())));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }

    /// The response with status and challenge and an empty body, for body
    /// types that only offer `Default` (boxed bodies, `tonic`'s body).
    #[must_use]
    pub fn into_empty_http_response<B: Default>(self) -> Response<B> {
        self.empty_response(B::default())
    }

    fn empty_response<B>(&self, body: B) -> Response<B> {
        let mut res = Response::new(body);
        *res.status_mut() = self.status();
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, self.www_authenticate());
        res
    }
}

/// A comma-separated list for log fields.
struct Joined<'a>(&'a [String]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// The `tracing` event for a denial. Never the token: only the subject and
/// issuer (identifiers, not credentials), the reason and the requirements.
pub(crate) fn trace_forbidden<E>(
    principal: &Principal<E>,
    forbidden: &Forbidden,
    path: Option<&str>,
) {
    tracing::info!(
        target: "tessera_authz",
        subject = principal.subject(),
        issuer = principal.issuer(),
        path,
        reason = forbidden.reason(),
        required_scopes = %Joined(forbidden.required_scopes()),
        required_roles = %Joined(forbidden.required_roles()),
        "authorization denied",
    );
}

/// The `tracing` event for a request without a principal.
///
/// DEBUG, not INFO: like `tessera_authn`'s missing-token event, it is mostly
/// noise from clients that did not log in (or a guard without an authn layer
/// in front, which every request shows at once).
pub(crate) fn trace_unauthenticated(path: &str) {
    tracing::debug!(
        target: "tessera_authz",
        path,
        reason = "no authenticated principal",
        "authorization denied",
    );
}

#[cfg(feature = "axum")]
mod axum_impls {
    use super::{Forbidden, Rejection};
    use axum::response::{IntoResponse, Response};

    impl IntoResponse for Forbidden {
        fn into_response(self) -> Response {
            self.into_http_response()
        }
    }

    impl IntoResponse for Rejection {
        fn into_response(self) -> Response {
            self.into_http_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_without_scopes_has_only_the_error_code() {
        let f = Forbidden::new("nope").with_roles(["admin"]);
        assert_eq!(f.www_authenticate(), r#"Bearer error="insufficient_scope""#);
    }

    #[test]
    fn challenge_lists_scopes_once_in_order() {
        let f = Forbidden::new("x")
            .with_scopes(["b", "a"])
            .with_scopes(["b", "c"]);
        assert_eq!(
            f.www_authenticate(),
            r#"Bearer error="insufficient_scope", scope="b a c""#
        );
    }

    #[test]
    fn scopes_that_would_break_the_header_are_left_out() {
        let f =
            Forbidden::new("x").with_scopes(["ok", "a\"b", "two words", "", "back\\slash", "é"]);
        assert_eq!(
            f.www_authenticate(),
            r#"Bearer error="insufficient_scope", scope="ok""#
        );
        let f = Forbidden::new("x").with_scopes(["a\"b"]);
        assert_eq!(f.www_authenticate(), r#"Bearer error="insufficient_scope""#);
    }

    #[test]
    fn json_body_escapes_the_reason() {
        let f = Forbidden::new("say \"no\"");
        let body: serde_json::Value = serde_json::from_str(&f.json_body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
        assert_eq!(body["error_description"], "say \"no\"");
    }

    #[test]
    fn unauthenticated_is_401_with_a_bare_bearer_challenge() {
        let res: Response<Bytes> = Rejection::Unauthenticated.into_http_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(body["error"], "unauthorized");
    }

    #[test]
    fn empty_response_keeps_status_and_challenge() {
        let res: Response<()> =
            Rejection::from(Forbidden::new("x").with_scopes(["s"])).into_empty_http_response();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", scope="s""#
        );
        assert!(!res.headers().contains_key(CONTENT_TYPE));
    }
}
