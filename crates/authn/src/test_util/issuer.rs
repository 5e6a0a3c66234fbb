//! [`TestIssuer`]: starts the server, manages keys and clients, counts
//! requests, and makes endpoints misbehave on demand.

use super::builder::TestIssuerBuilder;
use super::key::{Flags, KeyMaterial, TestKey, alg_name, jwks_document};
use super::oauth::{TestClient, TestUser};
use super::server::{IssuerState, JwksMode, lock, routes};
use super::token::TokenBuilder;
use axum::Router;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Errors of the test issuer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestIssuerError {
    /// Key generation failed.
    #[error("key generation failed")]
    KeyGen,
    /// The loopback listener could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// A local OIDC issuer for tests; see the [module docs](super).
///
/// The server runs on a background task until the `TestIssuer` is dropped.
pub struct TestIssuer {
    pub(super) state: Arc<IssuerState>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.state.issuer)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIssuer {
    /// Starts an issuer on `127.0.0.1` with an ephemeral port, one RS256 key
    /// and the audience `test-api`.
    pub async fn start() -> Result<Self, TestIssuerError> {
        Self::builder().start().await
    }

    /// Starts an issuer on `addr`, whose `iss` is `issuer` (default
    /// `http://<addr>`) and whose tokens name `audience`. To register
    /// clients or users before the first request is served, use
    /// [`builder`](Self::builder).
    pub async fn start_on(
        addr: SocketAddr,
        issuer: Option<String>,
        audience: &str,
    ) -> Result<Self, TestIssuerError> {
        let builder = Self::builder().bind(addr).audience(audience);
        match issuer {
            Some(issuer) => builder.issuer(issuer),
            None => builder,
        }
        .start()
        .await
    }

    /// Configures an issuer: address, `iss`, audience, and the clients and
    /// users registered before it serves.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder::default()
    }

    pub(super) fn serving(
        state: Arc<IssuerState>,
        addr: SocketAddr,
        server: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            state,
            addr,
            server,
        }
    }

    /// A router serving discovery and the JWKS, to mount in a larger app
    /// (the dev issuer does this).
    pub fn router(&self) -> Router {
        routes(&self.state)
    }

    /// The `iss` of minted tokens, and the base URL of the server.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The audience put into minted tokens by default.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// The socket address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWKS URL.
    #[must_use]
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Generates a key for `alg`, publishes it, and makes it the key that
    /// signs tokens of that algorithm. Returns its `kid`.
    pub fn add_key(&self, alg: Algorithm) -> Result<String, TestIssuerError> {
        let n = self.state.next_kid.fetch_add(1, Ordering::Relaxed);
        let kid = format!("{}-{n}", alg_name(alg).to_ascii_lowercase());
        let key = TestKey::generate(kid.clone(), alg)?;
        self.keys().push(Arc::new(key));
        Ok(kid)
    }

    /// Like [`add_key`](Self::add_key), but the published JWK has no `alg`
    /// (as Entra ID publishes its keys).
    pub fn add_key_without_alg(&self, alg: Algorithm) -> Result<String, TestIssuerError> {
        let kid = self.add_key(alg)?;
        self.edit_key(&kid, |k| k.publish_alg = false);
        Ok(kid)
    }

    /// Adds an RSA key published with `"use": "enc"`. Tokens can still be
    /// signed with it via [`TokenBuilder::signing_key`], and must be refused.
    pub fn add_encryption_key(&self) -> Result<String, TestIssuerError> {
        let kid = self.add_key(Algorithm::RS256)?;
        self.edit_key(&kid, |k| {
            k.use_ = "enc";
            k.publish_alg = false;
        });
        Ok(kid)
    }

    /// Rotates the signing key of `alg`: a new key is published and signs
    /// from now on; the old one stays published until [`retire`](Self::retire).
    pub fn rotate(&self, alg: Algorithm) -> Result<String, TestIssuerError> {
        self.add_key(alg)
    }

    /// Stops publishing a key (it can still sign, for negative tests).
    pub fn retire(&self, kid: &str) {
        self.edit_key(kid, |k| k.published = false);
    }

    /// The public key of `kid` in PEM (SPKI), for static configuration.
    #[must_use]
    pub fn public_pem(&self, kid: &str) -> Option<String> {
        self.keys()
            .iter()
            .find(|k| k.kid == kid)
            .and_then(|k| k.public_pem())
    }

    /// The published JWKS document.
    #[must_use]
    pub fn jwks(&self) -> Value {
        jwks_document(&self.keys())
    }

    /// Makes the JWKS endpoint answer with this status (`None` restores it).
    pub fn fail_jwks(&self, status: Option<u16>) {
        *lock(&self.state.jwks_mode) = status.map_or(JwksMode::Normal, JwksMode::Failing);
    }

    /// Makes the JWKS endpoint serve these bytes verbatim (`None` restores it).
    pub fn serve_raw_jwks(&self, body: Option<Vec<u8>>) {
        *lock(&self.state.jwks_mode) = body.map_or(JwksMode::Normal, JwksMode::Raw);
    }

    /// The `Cache-Control` header of the JWKS response (default `public, max-age=300`).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *lock(&self.state.cache_control) = value.map(str::to_owned);
    }

    /// Makes discovery announce another `issuer` value (for mismatch tests).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        *lock(&self.state.discovery_issuer) = issuer.map(str::to_owned);
    }

    /// JWKS requests served so far.
    #[must_use]
    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::Relaxed)
    }

    /// Discovery requests served so far.
    #[must_use]
    pub fn discovery_fetches(&self) -> u64 {
        self.state.discovery_fetches.load(Ordering::Relaxed)
    }

    /// Starts a token with `iss`, `sub` = `user-1`, `aud`, `iat`, `nbf` and
    /// `exp` in 10 minutes, signed RS256 by the current RS256 key.
    pub fn token(&self) -> TokenBuilder<'_> {
        let now = crate::time::now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.state.issuer));
        claims.insert("sub".into(), json!("user-1"));
        claims.insert("aud".into(), json!(self.state.audience));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + 600));
        let mut header = Map::new();
        header.insert("typ".into(), json!("JWT"));
        TokenBuilder::new(self, header, claims)
    }

    pub(super) fn keys(&self) -> std::sync::MutexGuard<'_, Vec<Arc<TestKey>>> {
        lock(&self.state.keys)
    }

    fn edit_key(&self, kid: &str, f: impl FnOnce(&mut Flags)) {
        if let Some(key) = self.keys().iter().find(|k| k.kid == kid) {
            f(&mut lock(&key.flags));
        }
    }

    /// The shared HMAC secret of an HS* key, to configure a validator.
    #[must_use]
    pub fn hmac_secret(&self, kid: &str) -> Option<Vec<u8>> {
        self.keys()
            .iter()
            .find(|k| k.kid == kid)
            .and_then(|k| match &k.material {
                KeyMaterial::Hmac(s) => Some(s.clone()),
                _ => None,
            })
    }
}

/// The OAuth side: registered clients and users, the token endpoint and
/// introspection (served at `/token` and `/introspect`).
impl TestIssuer {
    /// Registers a client for the token and introspection endpoints
    /// (replacing one with the same id).
    pub fn add_client(&self, client: TestClient) {
        lock(&self.state.oauth.clients).insert(client.client_id.clone(), client);
    }

    /// Registers a user for the password grant (development only).
    pub fn add_user(&self, user: TestUser) {
        lock(&self.state.oauth.users).insert(user.username.clone(), user);
    }

    /// The token endpoint URL.
    #[must_use]
    pub fn token_url(&self) -> String {
        format!("{}/token", self.state.issuer.trim_end_matches('/'))
    }

    /// The introspection endpoint URL.
    #[must_use]
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.state.issuer.trim_end_matches('/'))
    }

    /// Requests served by the token endpoint so far.
    #[must_use]
    pub fn token_requests(&self) -> u64 {
        self.state.oauth.token_requests.load(Ordering::Relaxed)
    }

    /// Requests served by the introspection endpoint so far.
    #[must_use]
    pub fn introspection_requests(&self) -> u64 {
        self.state
            .oauth
            .introspection_requests
            .load(Ordering::Relaxed)
    }

    /// Makes the token and introspection endpoints answer with this status
    /// (`None` restores them).
    pub fn fail_token_endpoint(&self, status: Option<u16>) {
        *lock(&self.state.oauth.failure) = status;
    }

    /// Delays every token endpoint response (for concurrency tests).
    pub fn set_token_delay(&self, delay: Duration) {
        *lock(&self.state.oauth.delay) = delay;
    }

    /// Demands server nonces (RFC 9449 §8) in the DPoP proofs of token
    /// requests: a proof without the current one is answered 400
    /// `use_dpop_nonce` with a `DPoP-Nonce` header, as Okta and Keycloak do.
    #[cfg(feature = "dpop")]
    pub fn demand_dpop_nonces(&self, demand: bool) {
        *lock(&self.state.oauth.dpop) =
            demand.then(|| Arc::new(crate::dpop::DpopOptions::new().nonces()));
    }

    /// The lifetime of tokens issued by the token endpoint (default 300 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state
            .oauth
            .lifetime
            .store(lifetime.as_secs().max(1), Ordering::Relaxed);
    }

    /// Makes a token inactive for introspection and exchange.
    pub fn revoke(&self, token: &str) {
        lock(&self.state.oauth.revoked).insert(token.to_owned());
    }
}
