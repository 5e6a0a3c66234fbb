//! The authenticated caller, as put into request extensions.
//!
//! ```
//! use tessera_authn::{Claims, Principal};
//!
//! let claims: Claims = serde_json::from_str(
//!     r#"{"iss":"https://idp.example","sub":"alice","exp":1900000000,"scope":"read"}"#,
//! ).unwrap();
//! let principal = Principal::new("https://idp.example", claims, "eyJ...");
//! assert_eq!(principal.subject(), Some("alice"));
//! assert_eq!(format!("{principal:?}").contains("eyJ"), false);
//! ```

use crate::claims::{Claims, ExtraClaims};
use crate::confirmation::Confirmation;
use crate::error::Redacted;
use std::fmt;
use std::sync::Arc;

/// A caller whose bearer token was validated.
///
/// Cheap to clone (an `Arc` inside). The layer inserts it into the request's
/// extensions; read it with `request.extensions().get::<Principal>()` or, with
/// the `axum` feature, the `Principal` extractor.
pub struct Principal<E = ExtraClaims> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    issuer: Arc<str>,
    claims: Claims<E>,
    token: Box<str>,
    confirmation: Option<Confirmation>,
}

impl<E> Principal<E> {
    /// Builds a principal. The validator does this; tests may too.
    pub fn new(issuer: impl Into<Arc<str>>, claims: Claims<E>, token: impl Into<Box<str>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                claims,
                token: token.into(),
                confirmation: None,
            }),
        }
    }

    /// Builds the principal of a sender-constrained token: bound by `cnf`.
    pub fn bound(
        issuer: impl Into<Arc<str>>,
        claims: Claims<E>,
        token: impl Into<Box<str>>,
        confirmation: Option<Confirmation>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                claims,
                token: token.into(),
                confirmation,
            }),
        }
    }

    /// The token's `cnf`: what it is bound to, if it is sender-constrained.
    /// The [`AuthnLayer`](crate::AuthnLayer) has checked the binding.
    #[must_use]
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.inner.confirmation.as_ref()
    }

    /// The trusted issuer that vouched for this token (its configured URL).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The validated claims.
    #[must_use]
    pub fn claims(&self) -> &Claims<E> {
        &self.inner.claims
    }

    /// The `sub` claim.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.inner.claims.sub.as_deref()
    }

    /// The raw bearer token, for relaying it to a downstream service.
    /// Never log it.
    #[must_use]
    pub fn bearer_token(&self) -> &str {
        &self.inner.token
    }
}

impl<E> Clone for Principal<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Principal<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("issuer", &self.inner.issuer)
            .field("claims", &self.inner.claims)
            .field("token", &Redacted)
            .field("confirmation", &self.inner.confirmation)
            .finish()
    }
}
