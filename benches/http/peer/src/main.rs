//! protected-api's contract on jwt-authorizer 0.15: the peer that
//! `benches/http/run` loads side by side with protected-api.
//!
//! Run with `AUTHN_ISSUER=http://127.0.0.1:8080 AUTHN_AUDIENCE=api cargo run --release --manifest-path benches/http/peer/Cargo.toml`.
//!
//! The same configuration as protected-api (`AUTHN_ISSUER`, `AUTHN_AUDIENCE`,
//! optional `AUTHN_JWKS_URL`, `BIND`, default `127.0.0.1:3001`) and the same
//! routes and answers:
//!
//! - `GET /healthz`: no authentication, 200 `ok`.
//! - `GET /me`: any valid token, 200 with the validated claims as JSON.
//! - `GET /admin`: requires scope `admin` (403 with
//!   `WWW-Authenticate: Bearer error="insufficient_scope", scope="admin"`).
//!
//! Tokens are checked as protected-api checks them: signature with a key
//! from the issuer's JWKS (found by OIDC discovery unless `AUTHN_JWKS_URL`
//! is set), `iss`, `aud` and `exp`. Written as a jwt-authorizer user would
//! write it, with the crate's defaults for everything else.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, OneOrArray, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The claims protected-api echoes on `/me`: the registered ones, then every
/// other claim.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Claims {
    iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<OneOrArray<String>>,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

fn app(authorizer: Authorizer<Claims>) -> Router {
    let protected = Router::new()
        .route("/admin", get(admin))
        .route("/me", get(me))
        .layer(authorizer.into_layer());
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn me(JwtClaims(claims): JwtClaims<Claims>) -> Json<Claims> {
    Json(claims)
}

async fn admin(JwtClaims(claims): JwtClaims<Claims>) -> Response {
    let scope = claims.extra.get("scope").and_then(Value::as_str);
    if !scope.is_some_and(|s| s.split(' ').any(|s| s == "admin")) {
        return (
            StatusCode::FORBIDDEN,
            [(
                header::WWW_AUTHENTICATE,
                r#"Bearer error="insufficient_scope", scope="admin""#,
            )],
        )
            .into_response();
    }
    Json(json!({ "admin": true, "sub": claims.sub })).into_response()
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (Some(issuer), Some(audience)) = (var("AUTHN_ISSUER"), var("AUTHN_AUDIENCE")) else {
        tracing::error!("AUTHN_ISSUER and AUTHN_AUDIENCE are required");
        return ExitCode::from(2);
    };
    let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let bind: SocketAddr = match bind.parse() {
        Ok(bind) => bind,
        Err(error) => {
            tracing::error!(%error, bind, "BIND is invalid");
            return ExitCode::from(2);
        }
    };
    let builder = match var("AUTHN_JWKS_URL") {
        Some(url) => JwtAuthorizer::from_jwks_url(&url),
        None => JwtAuthorizer::from_oidc(&issuer),
    };
    let validation = Validation::new().iss(&[&issuer]).aud(&[&audience]);
    let authorizer = match builder.validation(validation).build().await {
        Ok(authorizer) => authorizer,
        Err(error) => {
            tracing::error!(%error, "cannot build the authorizer");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %bind, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%bind, issuer, "jwt-authorizer-peer listening");
    let server = axum::serve(listener, app(authorizer)).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    match server.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::from(1)
        }
    }
}
