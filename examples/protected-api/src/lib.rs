//! The smallest Tessera service: three routes behind `AuthnLayer`, one of
//! them guarded by scope. A conformance target for external test suites.
//!
//! Run with `AUTHN_ISSUER=https://idp.example AUTHN_AUDIENCE=api cargo run -p protected-api`.
//!
//! - `GET /healthz`: no authentication, 200.
//! - `GET /me`: any valid token, 200 with the validated claims as JSON
//!   (a sender-constrained token's `cnf` among them).
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

use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tessera_authn::dpop::{DpopOptions, DpopPolicy};
use tessera_authn::{AuthnLayer, ConfigError, Issuer, JwtValidator, Principal};
use tessera_authz::RequireScopes;

/// The service's routes around a validator, DPoP settings at their
/// defaults (`AUTHN_DPOP=allow`, no nonces, `htu` from the request).
pub fn app(validator: JwtValidator) -> Router {
    app_with(validator, Some(DpopOptions::new()))
}

/// The service's routes around a validator; `dpop` as
/// [`Config::dpop_options`] makes them (`None`: bearer tokens only).
pub fn app_with(validator: JwtValidator, dpop: Option<DpopOptions>) -> Router {
    let layer = AuthnLayer::new(validator).realm("protected-api");
    let layer = match dpop {
        Some(options) => layer.dpop(options),
        None => layer,
    };
    let protected = Router::new()
        .route("/admin", get(admin))
        .route_layer(RequireScopes::all(["admin"]))
        .route("/me", get(me))
        .layer(layer);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
}

/// `app` with each request in a server span continuing the caller's trace
/// ([`telemetry::trace_requests`]), for a service that exports traces.
///
/// Without an exporter nothing reads those spans. When the span was at INFO,
/// opening one per request (its fields formatted for the log layer, entered
/// on every poll) cost about 4 µs of CPU per request under
/// `benches/http/run`, a third of a `/healthz` answer; it is at DEBUG now,
/// and the service still adds the middleware only when it exports.
pub fn traced(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(telemetry::trace_requests))
}

async fn healthz() -> &'static str {
    "ok"
}

/// The claims; for a bound token, its `cnf` is among them (the layer has
/// checked the binding).
async fn me(principal: Principal) -> Response {
    let Some(cnf) = principal.confirmation() else {
        // Written straight from the claims, without a `Value` tree between.
        return Json(principal.claims()).into_response();
    };
    let mut claims = serde_json::to_value(principal.claims()).unwrap_or_default();
    if let Value::Object(map) = &mut claims {
        map.entry("cnf")
            .or_insert_with(|| serde_json::to_value(cnf).unwrap_or_default());
    }
    Json(claims).into_response()
}

/// `AUTHN_DPOP`: which schemes tokens may come with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopMode {
    /// `allow` (the default): bearer and DPoP tokens; a DPoP-bound token
    /// only with its proof.
    #[default]
    Allow,
    /// `require`: DPoP only, bearer tokens refused.
    Require,
    /// `off`: bearer tokens only; DPoP-bound tokens refused.
    Off,
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
    /// `AUTHN_DPOP`: `allow` (default), `require` or `off`.
    pub dpop: DpopMode,
    /// `AUTHN_DPOP_NONCE`: `on` to demand server nonces in proofs (default `off`).
    pub dpop_nonce: bool,
    /// `PUBLIC_URL`: the external base URL proofs' `htu` name; default the
    /// request's own scheme, host and port.
    pub public_url: Option<String>,
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
    /// Reads `AUTHN_ISSUER`, `AUTHN_AUDIENCE`, `AUTHN_JWKS_URL`, `BIND`,
    /// `AUTHN_DPOP`, `AUTHN_DPOP_NONCE` and `PUBLIC_URL` through `var`
    /// (normally `std::env::var`).
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
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let dpop = match set("AUTHN_DPOP").as_deref() {
            None | Some("allow") => DpopMode::Allow,
            Some("require") => DpopMode::Require,
            Some("off") => DpopMode::Off,
            Some(other) => {
                return Err(ConfigProblem::Invalid {
                    name: "AUTHN_DPOP",
                    reason: format!("{other:?}: expected allow, require or off"),
                });
            }
        };
        let dpop_nonce = match set("AUTHN_DPOP_NONCE").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(ConfigProblem::Invalid {
                    name: "AUTHN_DPOP_NONCE",
                    reason: format!("{other:?}: expected on or off"),
                });
            }
        };
        let public_url = set("PUBLIC_URL");
        let config = Self {
            issuer,
            audience,
            jwks_url,
            bind,
            dpop,
            dpop_nonce,
            public_url,
        };
        config.dpop_options()?;
        Ok(config)
    }

    /// The DPoP settings of `AUTHN_DPOP`, `AUTHN_DPOP_NONCE` and
    /// `PUBLIC_URL`: `None` for `off`.
    pub fn dpop_options(&self) -> Result<Option<DpopOptions>, ConfigProblem> {
        let policy = match self.dpop {
            DpopMode::Off => return Ok(None),
            DpopMode::Allow => DpopPolicy::Allow,
            DpopMode::Require => DpopPolicy::Require,
        };
        let mut options = DpopOptions::new()
            .policy(policy)
            .proof_max_age(Duration::from_secs(60));
        if self.dpop_nonce {
            options = options.nonces();
        }
        if let Some(url) = &self.public_url {
            options = options
                .public_url(url)
                .map_err(|e| ConfigProblem::Invalid {
                    name: "PUBLIC_URL",
                    reason: e.to_string(),
                })?;
        }
        Ok(Some(options))
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
        assert_eq!(c.dpop, DpopMode::Allow);
        assert!(!c.dpop_nonce);
        assert_eq!(c.public_url, None);
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

    #[test]
    fn dpop_variables() {
        let base = [("AUTHN_ISSUER", "https://idp"), ("AUTHN_AUDIENCE", "api")];
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            Config::from_lookup(lookup(&pairs))
        };
        let c = with(&[
            ("AUTHN_DPOP", "require"),
            ("AUTHN_DPOP_NONCE", "on"),
            ("PUBLIC_URL", "https://api.example.com"),
        ])
        .unwrap();
        assert_eq!(c.dpop, DpopMode::Require);
        assert!(c.dpop_nonce);
        assert_eq!(c.public_url.as_deref(), Some("https://api.example.com"));
        assert_eq!(with(&[("AUTHN_DPOP", "off")]).unwrap().dpop, DpopMode::Off);
        assert!(
            with(&[("AUTHN_DPOP", "off")])
                .unwrap()
                .dpop_options()
                .unwrap()
                .is_none()
        );
        for (name, value) in [
            ("AUTHN_DPOP", "yes"),
            ("AUTHN_DPOP_NONCE", "true"),
            ("PUBLIC_URL", "api.example.com"),
        ] {
            assert!(
                matches!(with(&[(name, value)]), Err(ConfigProblem::Invalid { name: n, .. }) if n == name),
                "{name}={value}"
            );
        }
    }
}

/// The repository README's code (the quick start and the "Use it in your
/// service" cases), compiled as doctests so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}
