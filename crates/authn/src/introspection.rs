//! Opaque tokens: RFC 7662 token introspection as a validation mode
//! (feature `introspection`).
//!
//! Attach an [`Introspection`] to an [`Issuer`](crate::Issuer):
//!
//! - an issuer with introspection and no key source has all its tokens
//!   introspected (JWTs naming it in `iss`, and tokens that are not JWTs);
//! - an issuer with both keys it verifies JWTs locally (the fast path is
//!   unchanged) and introspects only tokens that are not JWTs.
//!
//! Tokens that are not JWTs go to the one issuer with introspection (or the
//! one named by [`JwtValidatorBuilder::opaque_tokens`](crate::JwtValidatorBuilder::opaque_tokens)
//! when several have it); they are never sent to any other party.
//!
//! The endpoint is called with client authentication. `active: false` is
//! rejected; the response's `exp` (required), `nbf`, `iat`, `iss` (when
//! present it must equal the issuer's) and `aud` (must name an accepted
//! audience) are checked like a JWT's, and `scope` must be a string.
//! Results are cached by a keyed hash of the token, per issuer (so the key
//! covers the endpoint, issuer and audiences the decision depends on),
//! bounded in size, never past `exp` nor [`cache_ttl`](Introspection::cache_ttl);
//! negative answers are cached for [`negative_ttl`](Introspection::negative_ttl).
//! Endpoint failures are not cached: they answer 503 and the next request
//! asks again.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_authn::introspection::Introspection;
//! use tessera_authn::test_util::{TestClient, TestIssuer};
//! use tessera_authn::{AuthnError, Issuer, JwtValidator};
//!
//! let partner = TestIssuer::start().await?;
//! partner.add_client(TestClient::new("orders-api", "s3cret"));
//! let validator = JwtValidator::builder()
//!     .issuer(
//!         Issuer::new(partner.issuer())
//!             .audience(partner.audience())
//!             .introspection(Introspection::new("orders-api", "s3cret").discovery()),
//!     )
//!     .build()?;
//!
//! let opaque = partner.token().subject("acme").opaque();
//! assert_eq!(validator.validate(&opaque).await?.subject(), Some("acme"));
//! let revoked = partner.token().opaque();
//! partner.revoke(&revoked);
//! assert_eq!(validator.validate(&revoked).await.unwrap_err(), AuthnError::Inactive);
//! # Ok(()) }
//! ```

use crate::claims::Claims;
use crate::endpoint::{AuthMethod, ClientAuth, EndpointSource, PostError, Which, post_form};
use crate::error::{AuthnError, ConfigError, KeyError};
use crate::principal::Principal;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How an issuer's tokens are introspected: the client credentials, the
/// endpoint and the cache. Attach it with
/// [`Issuer::introspection`](crate::Issuer::introspection).
#[derive(Clone)]
#[must_use]
pub struct Introspection {
    auth: ClientAuth,
    endpoint: Option<String>,
    timeout: Duration,
    capacity: u64,
    cache_ttl: Duration,
    negative_ttl: Duration,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("auth", &self.auth)
            .field("endpoint", &self.endpoint)
            .field("cache_ttl", &self.cache_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// Introspects as this client; the endpoint is found by OIDC discovery
    /// from the issuer URL unless [`endpoint`](Self::endpoint) is set.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            auth: ClientAuth {
                id: client_id.into(),
                secret: client_secret.into(),
                method: AuthMethod::default(),
            },
            endpoint: None,
            timeout: Duration::from_secs(5),
            capacity: 10_000,
            cache_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
        }
    }

    /// The introspection endpoint URL.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Finds the endpoint by OIDC discovery (`introspection_endpoint`) from
    /// the issuer URL (the default).
    pub fn discovery(mut self) -> Self {
        self.endpoint = None;
        self
    }

    /// `client_secret_basic` (default) or `client_secret_post`.
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.auth.method = method;
        self
    }

    /// Timeout of one introspection request (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most cached results (default 10 000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Longest time an active result is reused (default 60 s; never past
    /// `exp`). Shorter notices revocation sooner; zero disables caching.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long a negative result (inactive, wrong audience...) is reused
    /// (default 5 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }
}

/// A cached decision.
#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    outcome: Result<Arc<Map<String, Value>>, AuthnError>,
    ttl: Duration,
}

struct EntryExpiry;

impl moka::Expiry<u64, Entry> for EntryExpiry {
    fn expire_after_create(&self, _key: &u64, value: &Entry, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// An issuer's introspection client and cache.
pub(crate) struct Introspector {
    iss: Arc<str>,
    audiences: Box<[String]>,
    leeway: i64,
    auth: ClientAuth,
    endpoint: EndpointSource,
    http: reqwest::Client,
    timeout: Duration,
    cache_ttl: Duration,
    negative_ttl: Duration,
    cache: moka::sync::Cache<u64, Entry>,
    hasher: RandomState,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("iss", &self.iss)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub(crate) fn new(
        config: Introspection,
        iss: Arc<str>,
        audiences: Box<[String]>,
        leeway: i64,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        if config.auth.id.is_empty() {
            return Err(ConfigError::Introspection("empty client id".into()));
        }
        let endpoint = match &config.endpoint {
            Some(url) => EndpointSource::url(url),
            None => EndpointSource::discovery(&iss),
        }
        .map_err(|e| ConfigError::Key(KeyError::InvalidUrl(e)))?;
        Ok(Self {
            iss,
            audiences,
            leeway,
            auth: config.auth,
            endpoint,
            http,
            timeout: config.timeout,
            cache_ttl: config.cache_ttl,
            negative_ttl: config.negative_ttl,
            cache: moka::sync::Cache::builder()
                .max_capacity(config.capacity)
                .expire_after(EntryExpiry)
                .build(),
            hasher: RandomState::new(),
        })
    }

    /// A cached decision for `token`, if there is one.
    pub(crate) fn cached<E: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
    ) -> Option<Result<Principal<E>, AuthnError>> {
        let key = self.hasher.hash_one(token);
        let entry = self.cache.get(&key)?;
        if entry.digest != <[u8; 32]>::from(Sha256::digest(token.as_bytes())) {
            return None;
        }
        Some(match entry.outcome {
            Ok(claims) => self.principal(token, &claims, now),
            Err(e) => Err(e),
        })
    }

    /// Asks the endpoint (or the cache) whether `token` is active.
    pub(crate) async fn validate<E: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Principal<E>, AuthnError> {
        if let Some(cached) = self.cached(token, now) {
            return cached;
        }
        let response = self.introspect(token).await?;
        let outcome = self.decide(response, now);
        let ttl = self.ttl_of(&outcome, now);
        if !ttl.is_zero() {
            self.cache.insert(
                self.hasher.hash_one(token),
                Entry {
                    digest: Sha256::digest(token.as_bytes()).into(),
                    outcome: outcome.clone(),
                    ttl,
                },
            );
        }
        let claims = outcome?;
        self.principal(token, &claims, now)
    }

    async fn introspect(&self, token: &str) -> Result<Map<String, Value>, AuthnError> {
        let unavailable = |detail: String| {
            tracing::warn!(
                target: "tessera_authn::introspection",
                issuer = %self.iss,
                %detail,
                "token introspection failed"
            );
            AuthnError::IntrospectionUnavailable
        };
        let url = self
            .endpoint
            .resolve(&self.http, Which::Introspection, self.timeout)
            .await
            .map_err(unavailable)?;
        let params = vec![
            ("token", token.to_owned()),
            ("token_type_hint", "access_token".to_owned()),
        ];
        let body = post_form(&self.http, &url, &self.auth, params, self.timeout, None)
            .await
            .map_err(|e| {
                unavailable(match e {
                    PostError::Unreachable(e) | PostError::Body(e) => e,
                    PostError::Status(s) | PostError::Unexpected(s) => format!("status {s}"),
                    PostError::OAuth { code, .. } => format!("endpoint refused us: {code}"),
                })
            })?;
        parse_response(&body).map_err(unavailable)
    }

    /// How long a decision is cached: a positive one never beyond the token's `exp`.
    pub(crate) fn ttl_of(
        &self,
        outcome: &Result<Arc<Map<String, Value>>, AuthnError>,
        now: i64,
    ) -> Duration {
        match outcome {
            Ok(claims) => {
                let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
                let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
                self.cache_ttl.min(Duration::from_secs(left))
            }
            Err(_) => self.negative_ttl,
        }
    }

    /// Checks an introspection response like a JWT's claims.
    pub(crate) fn decide(
        &self,
        mut response: Map<String, Value>,
        now: i64,
    ) -> Result<Arc<Map<String, Value>>, AuthnError> {
        if response.remove("active") != Some(Value::Bool(true)) {
            return Err(AuthnError::Inactive);
        }
        match response.get("iss") {
            None => {
                // The issuer's own endpoint vouches for it.
                response.insert("iss".into(), Value::String(self.iss.to_string()));
            }
            Some(Value::String(iss)) if *iss == *self.iss => {}
            Some(_) => return Err(AuthnError::UntrustedIssuer),
        }
        if response.get("scope").is_some_and(|s| !s.is_string()) {
            return Err(AuthnError::InvalidClaims);
        }
        let claims: Claims<serde::de::IgnoredAny> =
            serde_json::from_value(Value::Object(response.clone()))
                .map_err(|_| AuthnError::InvalidClaims)?;
        if claims.exp.saturating_add(self.leeway) < now {
            return Err(AuthnError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(AuthnError::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(AuthnError::IssuedInFuture);
        }
        if !self.audiences.iter().any(|a| claims.aud.contains(a)) {
            return Err(AuthnError::InvalidAudience);
        }
        Ok(Arc::new(response))
    }

    pub(crate) fn principal<E: DeserializeOwned>(
        &self,
        token: &str,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<Principal<E>, AuthnError> {
        let confirmation = crate::confirmation::Confirmation::from_claims(claims)?;
        let claims: Claims<E> = serde_json::from_value(Value::Object(claims.clone()))
            .map_err(|_| AuthnError::InvalidClaims)?;
        // A cached answer is rechecked against the clock.
        if claims.exp.saturating_add(self.leeway) < now {
            return Err(AuthnError::Expired);
        }
        Ok(Principal::bound(
            Arc::clone(&self.iss),
            claims,
            token,
            confirmation,
        ))
    }
}

/// An introspection response body as a JSON object.
pub(crate) fn parse_response(body: &[u8]) -> Result<Map<String, Value>, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid response: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn introspector() -> Introspector {
        Introspector::new(
            Introspection::new("c", "s").endpoint("https://idp.example/introspect"),
            Arc::from("https://idp.example"),
            vec!["api".to_owned()].into(),
            0,
            reqwest::Client::new(),
        )
        .unwrap()
    }

    fn decide(response: Value) -> Result<Arc<Map<String, Value>>, AuthnError> {
        let Value::Object(map) = response else {
            panic!()
        };
        introspector().decide(map, 1_000)
    }

    #[test]
    fn responses_are_checked_like_jwt_claims() {
        let ok = json!({"active": true, "exp": 2_000, "aud": "api", "sub": "u"});
        let claims = decide(ok).unwrap();
        assert_eq!(claims["iss"], "https://idp.example");
        assert!(!claims.contains_key("active"));
        let cases = [
            (json!({"active": false}), AuthnError::Inactive),
            (
                json!({"active": "true", "exp": 2_000, "aud": "api"}),
                AuthnError::Inactive,
            ),
            (json!({"exp": 2_000, "aud": "api"}), AuthnError::Inactive),
            (
                json!({"active": true, "aud": "api"}),
                AuthnError::InvalidClaims,
            ),
            (
                json!({"active": true, "exp": 999, "aud": "api"}),
                AuthnError::Expired,
            ),
            (
                json!({"active": true, "exp": 2_000, "aud": "other"}),
                AuthnError::InvalidAudience,
            ),
            (
                json!({"active": true, "exp": 2_000}),
                AuthnError::InvalidAudience,
            ),
            (
                json!({"active": true, "exp": 2_000, "aud": "api", "iss": "https://evil"}),
                AuthnError::UntrustedIssuer,
            ),
            (
                json!({"active": true, "exp": 2_000, "aud": "api", "scope": ["a"]}),
                AuthnError::InvalidClaims,
            ),
            (
                json!({"active": true, "exp": 2_000, "aud": "api", "nbf": 1_500}),
                AuthnError::NotYetValid,
            ),
            (
                json!({"active": true, "exp": "soon", "aud": "api"}),
                AuthnError::InvalidClaims,
            ),
        ];
        for (response, error) in cases {
            assert_eq!(decide(response.clone()).unwrap_err(), error, "{response}");
        }
    }

    #[test]
    fn bad_configuration_is_refused() {
        let make = |i: Introspection| {
            Introspector::new(
                i,
                Arc::from("https://idp.example"),
                Box::new([]),
                0,
                reqwest::Client::new(),
            )
        };
        assert!(make(Introspection::new("", "s")).is_err());
        assert!(make(Introspection::new("c", "s").endpoint("gopher://x")).is_err());
        assert!(!format!("{:?}", Introspection::new("c", "hunter2")).contains("hunter2"));
    }
}
