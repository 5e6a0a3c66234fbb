//! The OAuth side of the test issuer: a token endpoint (RFC 6749
//! client credentials and password grants, RFC 8693 token exchange) and an
//! RFC 7662 introspection endpoint, both authenticated with
//! `client_secret_basic` or `client_secret_post`.
//!
//! Errors follow RFC 6749 §5.2: a JSON body with `error` and
//! `error_description`, 400, or 401 with a `WWW-Authenticate: Basic`
//! challenge for `invalid_client`. Token exchange answers as RFC 8693
//! §2.2.2 says: `invalid_request` for a bad request or an invalid or
//! unacceptable subject or actor token, `invalid_target` for an audience
//! or resource it will not issue for.

use super::server::{IssuerState, lock};
use crate::claims::Audience;
use crate::error::Redacted;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The grant type of RFC 8693 token exchange.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The RFC 8693 token type of an OAuth access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The RFC 8693 token type of a JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Most issued tokens remembered for introspection and exchange.
const MAX_ISSUED: usize = 100_000;

/// A client registered with the test issuer (the JSON shape of
/// `DEV_ISSUER_CLIENTS` entries). `Debug` redacts the secret.
///
/// ```
/// use tessera_authn::test_util::TestClient;
///
/// let client: TestClient = serde_json::from_str(
///     r#"{"client_id":"orders","client_secret":"s3cret","scopes":["read"],"audience":"billing"}"#,
/// ).unwrap();
/// assert_eq!(client.client_id, "orders");
/// assert!(!format!("{client:?}").contains("s3cret"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TestClient {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Scopes the client may request (all of them when it asks for none).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences the client may request tokens for, a string or an array;
    /// the first is the default. Empty: the issuer's default audience.
    #[serde(default)]
    pub audience: Audience,
}

impl TestClient {
    /// A client with these credentials, no scopes and the issuer's audience.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: Vec::new(),
            audience: Audience::default(),
        }
    }

    /// Adds scopes the client may request.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets the audiences the client may request; the first is the default.
    #[must_use]
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audience = audiences.into_iter().map(Into::into).collect();
        self
    }
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &Redacted)
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .finish()
    }
}

/// A user of the password grant (the JSON shape of `DEV_ISSUER_USERS`
/// entries). Development only. `Debug` redacts the password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TestUser {
    /// The login name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The `sub` of the user's tokens.
    pub sub: String,
    /// Scopes the user may be granted (all of them when none are requested).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Extra claims put into the user's tokens (registered claims win).
    #[serde(default)]
    pub claims: Map<String, Value>,
}

impl TestUser {
    /// A user with these credentials and `sub`.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        sub: impl Into<String>,
    ) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            sub: sub.into(),
            scopes: Vec::new(),
            claims: Map::new(),
        }
    }

    /// Adds scopes the user may be granted.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }
}

impl fmt::Debug for TestUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestUser")
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("sub", &self.sub)
            .field("scopes", &self.scopes)
            .field("claims", &self.claims)
            .finish()
    }
}

/// How the token endpoint behaves.
#[derive(Default)]
pub(super) struct OAuthState {
    pub(super) clients: Mutex<HashMap<String, TestClient>>,
    pub(super) users: Mutex<HashMap<String, TestUser>>,
    /// Tokens issued (or registered as opaque), with their claims.
    pub(super) issued: Mutex<HashMap<String, Map<String, Value>>>,
    pub(super) revoked: Mutex<HashSet<String>>,
    pub(super) failure: Mutex<Option<u16>>,
    pub(super) delay: Mutex<Duration>,
    /// Lifetime of issued tokens in seconds (0: the default, 300).
    pub(super) lifetime: AtomicU64,
    pub(super) token_requests: AtomicU64,
    pub(super) introspection_requests: AtomicU64,
    /// How token requests' DPoP proofs are checked (`None`: the defaults,
    /// no nonces).
    #[cfg(feature = "dpop")]
    pub(super) dpop: Mutex<Option<Arc<crate::dpop::DpopOptions>>>,
}

impl OAuthState {
    pub(super) fn lifetime(&self) -> i64 {
        match self.lifetime.load(Ordering::Relaxed) {
            0 => 300,
            secs => i64::try_from(secs).unwrap_or(300),
        }
    }

    pub(super) fn remember(&self, token: &str, claims: Map<String, Value>) {
        let mut issued = lock(&self.issued);
        if issued.len() >= MAX_ISSUED {
            let now = crate::time::now();
            issued.retain(|_, c| {
                c.get("exp")
                    .and_then(Value::as_i64)
                    .is_some_and(|e| e > now)
            });
            if issued.len() >= MAX_ISSUED {
                issued.clear();
            }
        }
        issued.insert(token.to_owned(), claims);
    }

    /// The claims of a token we issued that is still active.
    fn active(&self, token: &str) -> Option<Map<String, Value>> {
        if lock(&self.revoked).contains(token) {
            return None;
        }
        let claims = lock(&self.issued).get(token).cloned()?;
        let exp = claims.get("exp").and_then(Value::as_i64)?;
        (exp > crate::time::now()).then_some(claims)
    }
}

/// An RFC 6749 §5.2 error.
struct OAuthError {
    code: &'static str,
    description: String,
    basic_challenge: bool,
    /// The `DPoP-Nonce` to send with a `use_dpop_nonce` error.
    dpop_nonce: Option<HeaderValue>,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            dpop_nonce: None,
        }
    }

    fn client(description: impl Into<String>, basic_challenge: bool) -> Self {
        Self {
            code: "invalid_client",
            description: description.into(),
            basic_challenge,
            dpop_nonce: None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = if self.code == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut response = (status, no_store(), body.to_string()).into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="token", charset="UTF-8""#),
            );
        }
        if let Some(nonce) = self.dpop_nonce {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        response
    }
}

fn no_store() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}

/// A form body; every parameter at most once (RFC 6749 §3.2), except
/// `audience` and `resource`, which RFC 8693 §2.1 lets a token exchange
/// repeat: their values are all kept in `targets`.
struct Form(HashMap<String, String>, Vec<(String, String)>);

/// The parameters RFC 8693 §2.1 allows more than once.
const TARGET_PARAMS: [&str; 2] = ["audience", "resource"];

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(OAuthError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let mut params = HashMap::new();
        let mut targets = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if TARGET_PARAMS.contains(&k.as_ref()) {
                targets.push((k.clone().into_owned(), v.clone().into_owned()));
                if params.contains_key(k.as_ref()) {
                    continue;
                }
            }
            if params
                .insert(k.clone().into_owned(), v.into_owned())
                .is_some()
            {
                return Err(OAuthError::new(
                    "invalid_request",
                    format!("parameter {k} repeated"),
                ));
            }
        }
        Ok(Self(params, targets))
    }

    /// Refuses a repeated `audience` or `resource` outside token exchange.
    fn single_targets(&self) -> Result<(), OAuthError> {
        match TARGET_PARAMS
            .iter()
            .find(|name| self.1.iter().filter(|(k, _)| k == *name).count() > 1)
        {
            Some(name) => Err(OAuthError::new(
                "invalid_request",
                format!("parameter {name} repeated"),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::new("invalid_request", format!("missing parameter {name}")))
    }
}

fn secrets_equal(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// `client_secret_basic` (credentials form-urlencoded, RFC 6749 §2.3.1) or
/// `client_secret_post`; never both.
fn authenticate(
    state: &IssuerState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<TestClient, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::client(
                    "unsupported authentication scheme",
                    true,
                ));
            }
            let decoded = STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| OAuthError::client("malformed basic credentials", true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::client("malformed basic credentials", true))?;
            Some((id.to_owned(), secret.to_owned()))
        }
    };
    let (id, secret, via_basic) = match basic {
        Some((id, secret)) => {
            if form.0.contains_key("client_secret") {
                return Err(OAuthError::new(
                    "invalid_request",
                    "more than one client authentication method",
                ));
            }
            (id, secret, true)
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned(), false),
            _ => return Err(OAuthError::client("client authentication required", true)),
        },
    };
    let clients = lock(&state.oauth.clients);
    // RFC 6749 §2.3.1 asks clients to form-urlencode Basic credentials;
    // many (curl -u, reqwest) do not, so both forms are accepted.
    let found = if via_basic {
        clients
            .get(&id)
            .filter(|c| {
                secrets_equal(&c.client_secret, &secret)
                    || secrets_equal(&c.client_secret, &form_decode(&secret))
            })
            .or_else(|| {
                clients
                    .get(&form_decode(&id))
                    .filter(|c| secrets_equal(&c.client_secret, &form_decode(&secret)))
            })
    } else {
        clients
            .get(&id)
            .filter(|c| secrets_equal(&c.client_secret, &secret))
    };
    match found {
        Some(client) => Ok(client.clone()),
        _ => Err(OAuthError::client(
            "client authentication failed",
            via_basic,
        )),
    }
}

/// RFC 6749 §2.3.1 form-urlencoding of Basic credentials: `+` is a space,
/// `%XX` a byte. Undecodable input stays as it is.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// The granted scope: the requested one, each a member of `allowed`, or
/// all of `allowed` when none is requested.
fn grant_scope(requested: Option<&str>, allowed: &[String]) -> Result<String, OAuthError> {
    match requested {
        None => Ok(allowed.join(" ")),
        Some(requested) => {
            let mut granted: Vec<&str> = Vec::new();
            for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                if !allowed.iter().any(|a| a == scope) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("scope {scope} not allowed"),
                    ));
                }
                if !granted.contains(&scope) {
                    granted.push(scope);
                }
            }
            Ok(granted.join(" "))
        }
    }
}

fn grant_audience(
    state: &IssuerState,
    requested: Option<&str>,
    client: &TestClient,
) -> Result<String, OAuthError> {
    let allowed: Vec<&str> = if client.audience.is_empty() {
        vec![state.audience.as_str()]
    } else {
        client.audience.iter().collect()
    };
    match requested {
        None => Ok(allowed[0].to_owned()),
        Some(aud) if allowed.contains(&aud) => Ok(aud.to_owned()),
        Some(aud) => Err(OAuthError::new(
            "invalid_target",
            format!("audience {aud} not allowed for this client"),
        )),
    }
}

pub(super) async fn token(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.oauth.token_requests.fetch_add(1, Ordering::Relaxed);
    let delay = *lock(&state.oauth.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = *lock(&state.oauth.failure) {
        return failure(status);
    }
    match issue(&state, &headers, &body) {
        Ok(body) => {
            let mut response = (StatusCode::OK, no_store(), body.to_string()).into_response();
            // RFC 9449 §8.2: the next nonce may come with a success too.
            if let Some(nonce) = dpop_nonce(&state) {
                response.headers_mut().insert("dpop-nonce", nonce);
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

/// The nonce token requests must echo now, when the issuer demands them.
fn dpop_nonce(state: &IssuerState) -> Option<HeaderValue> {
    #[cfg(feature = "dpop")]
    {
        let options = lock(&state.oauth.dpop).clone()?;
        crate::dpop::current_nonce(&options)
    }
    #[cfg(not(feature = "dpop"))]
    {
        let _ = state;
        None
    }
}

fn failure(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = if status == StatusCode::SERVICE_UNAVAILABLE {
        "temporarily_unavailable"
    } else {
        "server_error"
    };
    (status, no_store(), json!({ "error": code }).to_string()).into_response()
}

fn issue(state: &IssuerState, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form = Form::parse(headers, body)?;
    let client = authenticate(state, headers, &form)?;
    let grant = form.require("grant_type")?;
    let now = crate::time::now();
    let lifetime = state.oauth.lifetime();
    let mut claims = Map::new();
    let (scope, issued_token_type) = match grant {
        "client_credentials" => {
            form.single_targets()?;
            let scope = grant_scope(form.get("scope"), &client.scopes)?;
            let aud = grant_audience(state, form.get("audience"), &client)?;
            claims.insert("sub".into(), json!(client.client_id));
            claims.insert("aud".into(), json!(aud));
            (scope, None)
        }
        "password" => {
            form.single_targets()?;
            let username = form.require("username")?;
            let password = form.require("password")?;
            let user = lock(&state.oauth.users).get(username).cloned();
            let user = user
                .filter(|u| secrets_equal(&u.password, password))
                .ok_or_else(|| OAuthError::new("invalid_grant", "invalid username or password"))?;
            let scope = grant_scope(form.get("scope"), &user.scopes)?;
            let aud = grant_audience(state, form.get("audience"), &client)?;
            claims.extend(user.claims.clone());
            claims.insert("sub".into(), json!(user.sub));
            claims.insert("aud".into(), json!(aud));
            claims.insert("preferred_username".into(), json!(user.username));
            (scope, None)
        }
        TOKEN_EXCHANGE_GRANT => {
            let subject_token = form.require("subject_token")?;
            let subject_type = form.require("subject_token_type")?;
            if subject_type != ACCESS_TOKEN_TYPE && subject_type != JWT_TOKEN_TYPE {
                return Err(OAuthError::new(
                    "invalid_request",
                    "unsupported subject_token_type",
                ));
            }
            if let Some(requested) = form.get("requested_token_type")
                && requested != ACCESS_TOKEN_TYPE
            {
                return Err(OAuthError::new(
                    "invalid_request",
                    "unsupported requested_token_type",
                ));
            }
            // RFC 8693 §2.2.2: an invalid or unacceptable subject or actor
            // token is `invalid_request` (not RFC 6749's `invalid_grant`).
            match (form.get("actor_token"), form.get("actor_token_type")) {
                (None, None) => {}
                (None, Some(_)) => {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "actor_token_type without actor_token",
                    ));
                }
                (Some(_), _) => {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "actor tokens are not supported",
                    ));
                }
            }
            let subject = state
                .oauth
                .active(subject_token)
                .ok_or_else(|| OAuthError::new("invalid_request", "subject token not active"))?;
            // §2.2.2: a target the server will not issue for is `invalid_target`.
            if form.1.iter().any(|(k, _)| k == "resource") {
                return Err(OAuthError::new(
                    "invalid_target",
                    "resource indicators are not supported; name an audience",
                ));
            }
            if form.1.iter().filter(|(k, _)| k == "audience").count() > 1 {
                return Err(OAuthError::new(
                    "invalid_target",
                    "one audience per token exchange",
                ));
            }
            let subject_scopes: Vec<String> = subject
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let scope = grant_scope(form.get("scope"), &subject_scopes)?;
            let aud = grant_audience(state, form.get("audience"), &client)?;
            if let Some(sub) = subject.get("sub") {
                claims.insert("sub".into(), sub.clone());
            }
            claims.insert("aud".into(), json!(aud));
            claims.insert("act".into(), json!({ "sub": client.client_id }));
            (scope, Some(ACCESS_TOKEN_TYPE))
        }
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant type not supported",
            ));
        }
    };
    claims.insert("iss".into(), json!(state.issuer));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + lifetime));
    claims.insert("jti".into(), json!(random_id()));
    claims.insert("client_id".into(), json!(client.client_id));
    if !scope.is_empty() {
        claims.insert("scope".into(), json!(scope));
    }
    let token_type = match dpop_jkt(state, headers)? {
        Some(jkt) => {
            claims.insert("cnf".into(), json!({ "jkt": jkt }));
            "DPoP"
        }
        None => "Bearer",
    };
    let token = sign(state, &claims).ok_or_else(|| OAuthError::new("server_error", "no key"))?;
    state.oauth.remember(&token, claims);
    let mut response = json!({
        "access_token": token,
        "token_type": token_type,
        "expires_in": lifetime,
    });
    if !scope.is_empty() {
        response["scope"] = json!(scope);
    }
    if let Some(issued) = issued_token_type {
        response["issued_token_type"] = json!(issued);
    }
    Ok(response)
}

/// The thumbprint of the token request's DPoP proof, if it carries one
/// (RFC 9449 §5): the token is then bound to that key. Without the `dpop`
/// feature the header is ignored, as by a server that does not know DPoP.
fn dpop_jkt(state: &IssuerState, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    #[cfg(feature = "dpop")]
    {
        let invalid = |why: String| OAuthError::new("invalid_dpop_proof", why);
        if proofs.next().is_some() {
            return Err(invalid("more than one proof".into()));
        }
        let proof = proof.to_str().map_err(|_| invalid("malformed".into()))?;
        let token_url = format!("{}/token", state.issuer.trim_end_matches('/'));
        let options = lock(&state.oauth.dpop)
            .clone()
            .unwrap_or_else(|| Arc::new(crate::dpop::DpopOptions::new()));
        match crate::dpop::token_request_jkt(proof, &token_url, &options) {
            Ok(jkt) => Ok(Some(jkt)),
            Err(crate::AuthnError::UseDpopNonce) => Err(OAuthError {
                dpop_nonce: crate::dpop::current_nonce(&options),
                ..OAuthError::new("use_dpop_nonce", "the proof must carry the server's nonce")
            }),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
    #[cfg(not(feature = "dpop"))]
    {
        let _ = (state, proof, proofs);
        Ok(None)
    }
}

/// Signs RS256 `at+jwt` with the newest published RS256 key.
fn sign(state: &IssuerState, claims: &Map<String, Value>) -> Option<String> {
    let key = lock(&state.keys)
        .iter()
        .rev()
        .find(|k| {
            let flags = k.flags();
            flags.published && flags.use_ == "sig" && k.alg == jsonwebtoken::Algorithm::RS256
        })
        .cloned()?;
    let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": key.kid });
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
    );
    let signature = key.sign(jsonwebtoken::Algorithm::RS256, message.as_bytes(), false);
    Some(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

pub(super) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) async fn introspect(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .oauth
        .introspection_requests
        .fetch_add(1, Ordering::Relaxed);
    if let Some(status) = *lock(&state.oauth.failure) {
        return failure(status);
    }
    let result = Form::parse(&headers, &body).and_then(|form| {
        form.single_targets()?;
        authenticate(&state, &headers, &form)?;
        let token = form.require("token")?;
        Ok(match state.oauth.active(token) {
            Some(claims) => {
                let mut body = Value::Object(claims);
                body["active"] = json!(true);
                body["token_type"] = json!("Bearer");
                body
            }
            None => json!({ "active": false }),
        })
    });
    match result {
        Ok(body) => (StatusCode::OK, no_store(), body.to_string()).into_response(),
        Err(error) => error.into_response(),
    }
}
