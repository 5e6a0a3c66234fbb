//! A local OIDC issuer for development and for the examples, built on
//! `tessera_authn::test_util::TestIssuer`. **Development only**: keys live in
//! memory and change at every start, and the password grant exists so you
//! can get a user token with `curl`.
//!
//! Configured by environment:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `BIND` | listen address, default `127.0.0.1:8080` |
//! | `DEV_ISSUER_URL` | the `iss` in tokens and discovery, default `http://<BIND>` |
//! | `DEV_ISSUER_CLIENTS` | JSON array of `{"client_id", "client_secret", "scopes": [..], "audience"}` |
//! | `DEV_ISSUER_USERS` | optional JSON array of `{"username", "password", "sub", "scopes": [..], "claims": {..}}` |
//! | `DEV_ISSUER_DPOP_NONCE` | `on`: token requests' DPoP proofs must echo a server nonce (400 `use_dpop_nonce` with `DPoP-Nonce` otherwise); default `off` |
//!
//! Endpoints: `GET /.well-known/openid-configuration`, `GET /jwks.json`,
//! `POST /token` (`client_credentials` with `client_secret_basic` or
//! `client_secret_post`, `password`, RFC 8693 token exchange) and
//! `POST /introspect` (RFC 7662). Tokens are RS256 `at+jwt` with `iss`,
//! `sub`, `aud`, `exp`, `iat`, `jti`, `scope` and `client_id`.
//!
//! Start it in-process (tests, other examples):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = [
//!     ("BIND", "127.0.0.1:0"),
//!     ("DEV_ISSUER_CLIENTS", r#"[{"client_id":"svc","client_secret":"s","scopes":["read"],"audience":"api"}]"#),
//! ];
//! let config = dev_issuer::Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))?;
//! let issuer = dev_issuer::start(config).await?;
//! assert!(issuer.issuer().starts_with("http://127.0.0.1:"));
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use tessera_authn::test_util::{TestClient, TestIssuer, TestIssuerError, TestUser};

/// The audience of tokens for clients that name none.
pub const DEFAULT_AUDIENCE: &str = "api";

/// The dev issuer's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// The `iss` value (default `http://<bind>`, with the bound port when `bind` asks for port 0).
    pub issuer: Option<String>,
    /// Registered clients.
    pub clients: Vec<TestClient>,
    /// Password-grant users (development only).
    pub users: Vec<TestUser>,
    /// Whether token requests' DPoP proofs must echo a server nonce.
    pub dpop_nonce: bool,
}

/// A configuration problem; the binary prints it and exits with status 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `BIND` is not a socket address.
    #[error("BIND: {0:?} is not an address like 127.0.0.1:8080")]
    Bind(String),
    /// `DEV_ISSUER_URL` is not an http(s) URL.
    #[error("DEV_ISSUER_URL: {0}")]
    IssuerUrl(String),
    /// `DEV_ISSUER_DPOP_NONCE` is neither `on` nor `off`.
    #[error("DEV_ISSUER_DPOP_NONCE: {0:?} is neither on nor off")]
    DpopNonce(String),
    /// `DEV_ISSUER_CLIENTS` or `DEV_ISSUER_USERS` is not valid.
    #[error("{var}: {problem}")]
    Json {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn parse_list<T: serde::de::DeserializeOwned>(
    var: &'static str,
    value: Option<String>,
) -> Result<Vec<T>, ConfigError> {
    match value {
        None => Ok(Vec::new()),
        Some(v) if v.trim().is_empty() => Ok(Vec::new()),
        Some(v) => serde_json::from_str(&v).map_err(|e| ConfigError::Json {
            var,
            problem: e.to_string(),
        }),
    }
}

impl Config {
    /// Reads the configuration through `lookup` (`std::env::var` in the binary).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bind_text = lookup("BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let bind: SocketAddr = bind_text
            .trim()
            .parse()
            .map_err(|_| ConfigError::Bind(bind_text.clone()))?;
        let issuer = match lookup("DEV_ISSUER_URL") {
            None => None,
            Some(url) => {
                let parsed = url::Url::parse(&url)
                    .map_err(|e| ConfigError::IssuerUrl(format!("{url:?}: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(ConfigError::IssuerUrl(format!(
                        "{url:?} is not an http(s) URL"
                    )));
                }
                Some(url)
            }
        };
        let clients: Vec<TestClient> =
            parse_list("DEV_ISSUER_CLIENTS", lookup("DEV_ISSUER_CLIENTS"))?;
        let users: Vec<TestUser> = parse_list("DEV_ISSUER_USERS", lookup("DEV_ISSUER_USERS"))?;
        let problem = |var, problem: String| ConfigError::Json { var, problem };
        let mut ids = std::collections::HashSet::new();
        for c in &clients {
            if c.client_id.is_empty() || c.client_secret.is_empty() {
                return Err(problem(
                    "DEV_ISSUER_CLIENTS",
                    "client_id and client_secret must not be empty".into(),
                ));
            }
            if !ids.insert(c.client_id.as_str()) {
                return Err(problem(
                    "DEV_ISSUER_CLIENTS",
                    format!("client {} listed twice", c.client_id),
                ));
            }
            if c.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(problem(
                    "DEV_ISSUER_CLIENTS",
                    format!(
                        "client {}: a scope is empty or contains a space",
                        c.client_id
                    ),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for u in &users {
            if u.username.is_empty() || u.password.is_empty() || u.sub.is_empty() {
                return Err(problem(
                    "DEV_ISSUER_USERS",
                    "username, password and sub must not be empty".into(),
                ));
            }
            if !names.insert(u.username.as_str()) {
                return Err(problem(
                    "DEV_ISSUER_USERS",
                    format!("user {} listed twice", u.username),
                ));
            }
        }
        let dpop_nonce = match lookup("DEV_ISSUER_DPOP_NONCE").as_deref().map(str::trim) {
            None | Some("" | "off") => false,
            Some("on") => true,
            Some(other) => return Err(ConfigError::DpopNonce(other.to_owned())),
        };
        Ok(Self {
            bind,
            issuer,
            clients,
            users,
            dpop_nonce,
        })
    }
}

/// Starts the issuer; it serves until the returned handle is dropped.
///
/// The first request is answered only once the signing key exists and every
/// configured client and user is registered, so a health check that waits
/// for discovery finds the token endpoint ready.
pub async fn start(config: Config) -> Result<TestIssuer, TestIssuerError> {
    let builder = TestIssuer::builder()
        .bind(config.bind)
        .audience(DEFAULT_AUDIENCE)
        .clients(config.clients)
        .users(config.users)
        .demand_dpop_nonces(config.dpop_nonce);
    match config.issuer {
        Some(issuer) => builder.issuer(issuer),
        None => builder,
    }
    .start()
    .await
}
