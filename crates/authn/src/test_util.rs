//! A test issuer: generates keys, serves OIDC discovery and a JWKS on an
//! ephemeral loopback port, mints tokens with any claims and algorithm, and
//! rotates keys. Our own tests use it; yours can too (feature `test-util`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_authn::test_util::TestIssuer;
//! use tessera_authn::{Algorithm, AuthnError, Issuer, JwtValidator};
//!
//! let idp = TestIssuer::start().await?; // one RS256 key
//! idp.add_key(Algorithm::ES256)?;         // and an ES256 key, published before the first fetch
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new(idp.issuer()).audience(idp.audience()).discovery())
//!     .build()?;
//!
//! let token = idp.token().subject("alice").claim("scope", "read").sign();
//! let principal = validator.validate(&token).await?;
//! assert_eq!(principal.subject(), Some("alice"));
//!
//! let expired = idp.token().expires_in_secs(-3600).sign();
//! assert_eq!(validator.validate(&expired).await.unwrap_err(), AuthnError::Expired);
//!
//! let es256 = idp.token().alg(Algorithm::ES256).sign();
//! assert!(validator.validate(&es256).await.is_ok());
//! # Ok(()) }
//! ```

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

mod oauth;
pub use oauth::{ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, TestClient, TestUser};

/// A signing key of the test issuer.
enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec {
        fixed: EcdsaKeyPair,
        der: EcdsaKeyPair,
        crv: &'static str,
    },
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

struct TestKey {
    kid: String,
    alg: Algorithm,
    material: KeyMaterial,
    flags: Mutex<Flags>,
}

/// How a key is published.
#[derive(Clone, Copy)]
struct Flags {
    publish_alg: bool,
    use_: &'static str,
    published: bool,
}

impl TestKey {
    fn generate(kid: String, alg: Algorithm) -> Result<Self, TestIssuerError> {
        let material = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyMaterial::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| TestIssuerError::KeyGen)?,
            ),
            Algorithm::ES256 | Algorithm::ES384 => {
                let (fixed_alg, der_alg, crv) = if alg == Algorithm::ES256 {
                    (
                        &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                        "P-256",
                    )
                } else {
                    (
                        &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                        "P-384",
                    )
                };
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(fixed_alg, &rng)
                    .map_err(|_| TestIssuerError::KeyGen)?;
                KeyMaterial::Ec {
                    fixed: EcdsaKeyPair::from_pkcs8(fixed_alg, pkcs8.as_ref())
                        .map_err(|_| TestIssuerError::KeyGen)?,
                    der: EcdsaKeyPair::from_pkcs8(der_alg, pkcs8.as_ref())
                        .map_err(|_| TestIssuerError::KeyGen)?,
                    crv,
                }
            }
            Algorithm::EdDSA => {
                KeyMaterial::Ed(Ed25519KeyPair::generate().map_err(|_| TestIssuerError::KeyGen)?)
            }
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let mut secret = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut secret).map_err(|_| TestIssuerError::KeyGen)?;
                KeyMaterial::Hmac(secret)
            }
            _ => return Err(TestIssuerError::KeyGen),
        };
        Ok(Self {
            kid,
            alg,
            material,
            flags: Mutex::new(Flags {
                publish_alg: true,
                use_: "sig",
                published: true,
            }),
        })
    }

    fn flags(&self) -> Flags {
        *lock(&self.flags)
    }

    fn jwk(&self) -> Option<Value> {
        let flags = self.flags();
        if !flags.published {
            return None;
        }
        let mut jwk = match &self.material {
            KeyMaterial::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                })
            }
            KeyMaterial::Ec { fixed, crv, .. } => {
                let point = fixed.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..=len]),
                    "y": URL_SAFE_NO_PAD.encode(&point[len + 1..]),
                })
            }
            KeyMaterial::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
            KeyMaterial::Hmac(_) => return None,
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!(flags.use_);
        if flags.publish_alg {
            jwk["alg"] = json!(alg_name(self.alg));
        }
        Some(jwk)
    }

    fn sign(&self, alg: Algorithm, message: &[u8], der_ecdsa: bool) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .expect("rsa signing");
                out
            }
            KeyMaterial::Ec { fixed, der, .. } => {
                let pair = if der_ecdsa { der } else { fixed };
                pair.sign(&rng, message)
                    .expect("ecdsa signing")
                    .as_ref()
                    .to_vec()
            }
            KeyMaterial::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            KeyMaterial::Hmac(secret) => {
                let algorithm = match alg {
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => aws_lc_rs::hmac::HMAC_SHA256,
                };
                let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
                aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
            }
        }
    }

    fn public_pem(&self) -> Option<String> {
        use aws_lc_rs::encoding::AsDer as _;
        let der: Vec<u8> = match &self.material {
            KeyMaterial::Rsa(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            KeyMaterial::Ec { fixed, .. } => fixed.public_key().as_der().ok()?.as_ref().to_vec(),
            KeyMaterial::Ed(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            KeyMaterial::Hmac(_) => return None,
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        Some(format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ))
    }
}

/// The JOSE name of an algorithm.
#[must_use]
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        _ => "EdDSA",
    }
}

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

/// How the JWKS endpoint behaves.
#[derive(Debug, Clone, Default)]
enum JwksMode {
    #[default]
    Normal,
    Failing(u16),
    Raw(Vec<u8>),
}

struct IssuerState {
    issuer: String,
    audience: String,
    keys: Mutex<Vec<Arc<TestKey>>>,
    /// The key used for each algorithm by default: the newest one.
    next_kid: AtomicU64,
    jwks_mode: Mutex<JwksMode>,
    cache_control: Mutex<Option<String>>,
    discovery_issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicU64,
    discovery_fetches: AtomicU64,
    oauth: oauth::OAuthState,
}

/// A local OIDC issuer for tests; see the [module docs](self).
///
/// The server runs on a background task until the `TestIssuer` is dropped.
pub struct TestIssuer {
    state: Arc<IssuerState>,
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
        Self::start_on(
            "127.0.0.1:0".parse().expect("loopback address"),
            None,
            "test-api",
        )
        .await
    }

    /// Starts an issuer on `addr`, whose `iss` is `issuer` (default
    /// `http://<addr>`) and whose tokens name `audience`.
    pub async fn start_on(
        addr: SocketAddr,
        issuer: Option<String>,
        audience: &str,
    ) -> Result<Self, TestIssuerError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(IssuerState {
            issuer: issuer.unwrap_or_else(|| format!("http://{addr}")),
            audience: audience.to_owned(),
            keys: Mutex::new(Vec::new()),
            next_kid: AtomicU64::new(1),
            jwks_mode: Mutex::new(JwksMode::Normal),
            cache_control: Mutex::new(Some("public, max-age=300".to_owned())),
            discovery_issuer: Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
            discovery_fetches: AtomicU64::new(0),
            oauth: oauth::OAuthState::default(),
        });
        let router = routes(&state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let issuer = Self {
            state,
            addr,
            server,
        };
        issuer.add_key(Algorithm::RS256)?;
        Ok(issuer)
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
        TokenBuilder {
            issuer: self,
            alg: Algorithm::RS256,
            header,
            claims,
            kid: KidChoice::Auto,
            signing_key: None,
            der_ecdsa: false,
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Vec<Arc<TestKey>>> {
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

fn routes(state: &Arc<IssuerState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks.json", get(jwks))
        .route("/token", axum::routing::post(oauth::token))
        .route("/introspect", axum::routing::post(oauth::introspect))
        .with_state(Arc::clone(state))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn jwks_document(keys: &[Arc<TestKey>]) -> Value {
    let keys: Vec<Value> = keys.iter().filter_map(|k| k.jwk()).collect();
    json!({ "keys": keys })
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::Relaxed);
    let announced = lock(&state.discovery_issuer)
        .clone()
        .unwrap_or_else(|| state.issuer.clone());
    let base = state.issuer.trim_end_matches('/');
    axum::Json(json!({
        "issuer": announced,
        "jwks_uri": format!("{base}/jwks.json"),
        "token_endpoint": format!("{base}/token"),
        "introspection_endpoint": format!("{base}/introspect"),
        "grant_types_supported": ["client_credentials", "password", oauth::TOKEN_EXCHANGE_GRANT],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
    }))
    .into_response()
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    let mode = lock(&state.jwks_mode).clone();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = lock(&state.cache_control).as_deref()
        && let Ok(v) = HeaderValue::from_str(cc)
    {
        headers.insert(header::CACHE_CONTROL, v);
    }
    match mode {
        JwksMode::Normal => {
            let doc = jwks_document(&lock(&state.keys));
            (headers, doc.to_string()).into_response()
        }
        JwksMode::Failing(status) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            .into_response(),
        JwksMode::Raw(body) => (headers, body).into_response(),
    }
}

#[derive(Debug, Clone)]
enum KidChoice {
    Auto,
    None,
    Fixed(String),
}

/// Mints one token; see [`TestIssuer::token`].
#[must_use]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    alg: Algorithm,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    kid: KidChoice,
    signing_key: Option<String>,
    der_ecdsa: bool,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("alg", &self.alg)
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder<'_> {
    /// Signs with this algorithm, using the newest key for it (generated on
    /// first use).
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `aud` (a string or an array).
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// `exp` = now + `secs` (negative for an expired token).
    pub fn expires_in_secs(self, secs: i64) -> Self {
        self.claim("exp", crate::time::now() + secs)
    }

    /// Sets a header member (`alg` and `kid` are set at signing unless given here).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header member.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Omits `kid` from the header.
    pub fn without_kid(mut self) -> Self {
        self.kid = KidChoice::None;
        self
    }

    /// Puts this `kid` in the header, whatever key signs.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = KidChoice::Fixed(kid.to_owned());
        self
    }

    /// Signs with the key `kid` (its kid goes into the header unless
    /// [`kid`](Self::kid) says otherwise).
    pub fn signing_key(mut self, kid: &str) -> Self {
        self.signing_key = Some(kid.to_owned());
        self
    }

    /// Produces an ECDSA signature in ASN.1 DER form instead of the JOSE
    /// fixed form (which validators must reject).
    pub fn der_ecdsa_signature(mut self) -> Self {
        self.der_ecdsa = true;
        self
    }

    /// Signs and returns the compact token.
    ///
    /// # Panics
    /// If no key can be generated for the algorithm (never with aws-lc-rs).
    pub fn sign(self) -> String {
        let key = self.key();
        let mut header = self.header.clone();
        header
            .entry("alg")
            .or_insert_with(|| json!(alg_name(self.alg)));
        match &self.kid {
            KidChoice::Auto => {
                header.entry("kid").or_insert_with(|| json!(key.kid));
            }
            KidChoice::Fixed(kid) => {
                header.insert("kid".into(), json!(kid));
            }
            KidChoice::None => {}
        }
        let header = serde_json::to_vec(&header).expect("json");
        let claims = serde_json::to_vec(&self.claims).expect("json");
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = key.sign(self.alg, message.as_bytes(), self.der_ecdsa);
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Returns an opaque (non-JWT) token carrying this builder's claims,
    /// known to the issuer's introspection endpoint until `exp` or
    /// [`TestIssuer::revoke`].
    pub fn opaque(self) -> String {
        let token = format!("opaque-{}", oauth::random_id());
        self.issuer.state.oauth.remember(&token, self.claims);
        token
    }

    /// Signs the token and makes it known to the introspection endpoint
    /// (tokens from [`sign`](Self::sign) introspect as inactive).
    pub fn sign_introspectable(self) -> String {
        let state = Arc::clone(&self.issuer.state);
        let claims = self.claims.clone();
        let token = self.sign();
        state.oauth.remember(&token, claims);
        token
    }

    /// Signs an arbitrary header and payload (raw JSON text) with the key
    /// this builder would use: for hostile-input tests.
    pub fn sign_raw(self, header_json: &str, payload_json: &str) -> String {
        let key = self.key();
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(payload_json)
        );
        let signature = key.sign(self.alg, message.as_bytes(), self.der_ecdsa);
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn key(&self) -> Arc<TestKey> {
        let find = |keys: &[Arc<TestKey>]| -> Option<Arc<TestKey>> {
            match &self.signing_key {
                Some(kid) => keys.iter().find(|k| &k.kid == kid).cloned(),
                None => keys
                    .iter()
                    .rev()
                    .find(|k| {
                        let flags = k.flags();
                        flags.published && flags.use_ == "sig" && k.alg == self.alg
                    })
                    .cloned(),
            }
        };
        if let Some(key) = find(&self.issuer.keys()) {
            return key;
        }
        let kid = self.issuer.add_key(self.alg).expect("key generation");
        let keys = self.issuer.keys();
        keys.iter()
            .find(|k| k.kid == kid)
            .cloned()
            .expect("just added")
    }
}
