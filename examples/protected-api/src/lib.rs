//! The smallest Tessera service: three routes behind `AuthnLayer`, one of
//! them guarded by scope. A conformance target for external test suites.
//!
//! Run with `AUTHN_ISSUER=https://idp.example AUTHN_AUDIENCE=api cargo run -p protected-api`.
//!
//! - `GET /healthz`: no authentication, 200.
//! - `GET /me`: any valid token, 200 with the validated claims as JSON.
//! - `GET /admin`: requires scope `admin`.
//!
//! ```
//! use tessera_authn::{Issuer, JwtValidator, KeySet};
//!
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("api").keys(KeySet::default()))
//!     .build()
//!     .unwrap();
//! let app: axum::Router = protected_api::app(validator);
//! # let _ = app;
//! ```

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tessera_authn::{AuthnLayer, Claims, ConfigError, Issuer, JwtValidator, Principal};
use tessera_authz::RequireScopes;

/// The service's routes around a validator.
pub fn app(validator: JwtValidator) -> Router {
    let protected = Router::new()
        .route("/admin", get(admin))
        .route_layer(RequireScopes::all(["admin"]))
        .route("/me", get(me))
        .layer(AuthnLayer::new(validator).realm("protected-api"));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .layer(axum::middleware::from_fn(telemetry::trace_requests))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn me(claims: Claims) -> Json<Claims> {
    Json(claims)
}

async fn admin(principal: Principal) -> Json<Value> {
    Json(json!({ "admin": true, "sub": principal.subject() }))
}

/// Configuration read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `AUTHN_ISSUER`: the issuer URL; keys are found by OIDC discovery.
    pub issuer: String,
    /// `AUTHN_AUDIENCE`: the audience tokens must name.
    pub audience: String,
    /// `AUTHN_JWKS_URL`: optional; skips discovery.
    pub jwks_url: Option<String>,
    /// `BIND`: the listen address (default `127.0.0.1:3000`).
    pub bind: SocketAddr,
}

/// A configuration problem, reported before the server starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A required variable is missing or empty.
    #[error("{0} is not set; it is required (see the README of examples/protected-api)")]
    Missing(&'static str),
    /// A variable has an invalid value.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The validator could not be built.
    #[error(transparent)]
    Validator(#[from] ConfigError),
}

impl Config {
    /// Reads `AUTHN_ISSUER`, `AUTHN_AUDIENCE`, `AUTHN_JWKS_URL` and `BIND`
    /// through `var` (normally `std::env::var`).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigProblem> {
        let required = |name: &'static str| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigProblem::Missing(name))
        };
        let issuer = required("AUTHN_ISSUER")?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ConfigProblem::Invalid {
                name: "AUTHN_ISSUER",
                reason: format!("{issuer:?} is not an http(s) URL"),
            });
        }
        let audience = required("AUTHN_AUDIENCE")?;
        let jwks_url = var("AUTHN_JWKS_URL").filter(|v| !v.trim().is_empty());
        let bind = var("BIND")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let bind = bind.parse().map_err(|e| ConfigProblem::Invalid {
            name: "BIND",
            reason: format!("{bind:?}: {e}"),
        })?;
        Ok(Self {
            issuer,
            audience,
            jwks_url,
            bind,
        })
    }

    /// Builds the validator this configuration describes.
    pub fn validator(&self) -> Result<JwtValidator, ConfigProblem> {
        let issuer = Issuer::new(&self.issuer).audience(&self.audience);
        let issuer = match &self.jwks_url {
            Some(url) => issuer.jwks_url(url),
            None => issuer.discovery(),
        };
        Ok(JwtValidator::builder().issuer(issuer).build()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_and_required_variables() {
        let c = Config::from_lookup(lookup(&[
            ("AUTHN_ISSUER", "https://idp"),
            ("AUTHN_AUDIENCE", "api"),
        ]))
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(c.jwks_url, None);
        assert!(matches!(
            Config::from_lookup(lookup(&[("AUTHN_AUDIENCE", "api")])),
            Err(ConfigProblem::Missing("AUTHN_ISSUER"))
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "https://idp"),
                ("AUTHN_AUDIENCE", " ")
            ])),
            Err(ConfigProblem::Missing("AUTHN_AUDIENCE"))
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "idp"),
                ("AUTHN_AUDIENCE", "api")
            ])),
            Err(ConfigProblem::Invalid {
                name: "AUTHN_ISSUER",
                ..
            })
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "https://idp"),
                ("AUTHN_AUDIENCE", "api"),
                ("BIND", "nowhere")
            ])),
            Err(ConfigProblem::Invalid { name: "BIND", .. })
        ));
    }
}

/// The repository README's code (the quick start and the "Use it in your
/// service" cases), compiled as doctests so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}
