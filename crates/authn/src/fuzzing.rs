//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): thin
//! wrappers over the crate's private parsing paths, so that the fuzzers run
//! the code requests and responses really go through. Not a stable API.

use crate::client::AccessToken;
use crate::client::RefreshAhead;
use crate::client::slot::{Cached, Fetched};
use crate::endpoint::Which;
use crate::error::{AuthnError, KeyError};
use crate::introspection::{Introspection, Introspector};
use crate::layer::TokenLocation;
use crate::layer::token::{DEFAULT_MAX_HEADER_LEN, extract};
use crate::{ExtraClaims, JwksOptions, JwtValidator, KeySet, Principal};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// The longest lifetime a cached outgoing token is given.
pub const MAX_TOKEN_LIFETIME: Duration = crate::client::slot::MAX_TOKEN_LIFETIME;

/// An `Authorization` header value through the layer's token extraction
/// (`AuthnLayer`'s defaults: header size limit, `Bearer` only) and then
/// `validator`. `Ok(None)` when the key set is not loaded (never with static
/// keys). Values that cannot be an `http::HeaderValue` never reach a service.
pub fn authorization_header(
    validator: &JwtValidator,
    value: &[u8],
) -> Option<Result<Option<Principal<ExtraClaims>>, AuthnError>> {
    let value = http::HeaderValue::from_bytes(value).ok()?;
    let request = http::Request::builder()
        .header(http::header::AUTHORIZATION, value)
        .body(())
        .ok()?;
    Some(
        extract(
            &request,
            &TokenLocation::AuthorizationHeader,
            DEFAULT_MAX_HEADER_LEN,
            false,
        )
        .and_then(|(_, token)| validator.validate_now(token)),
    )
}

/// A JWKS response body, arriving in `chunks`, through the cache's size
/// limit and key-count cap (`options.max_bytes`, `options.max_keys`).
pub fn jwks_response<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    options: &JwksOptions,
) -> Result<KeySet, KeyError> {
    let mut body = Vec::new();
    for chunk in chunks {
        crate::jwks::append_limited(&mut body, chunk, options.max_bytes)?;
    }
    crate::jwks::keys_from_document(&body, options)
}

/// The token and introspection endpoints named by a discovery document
/// for `issuer` (what the client and introspection features discover).
pub fn endpoint_discovery(document: &[u8], issuer: &str) -> [Result<Url, String>; 2] {
    [Which::Token, Which::Introspection]
        .map(|which| crate::endpoint::endpoint_from_discovery(document, issuer, which))
}

/// A token as the client caches it: when it is renewed and when it
/// expires, counted from the request.
#[derive(Debug)]
#[non_exhaustive]
pub struct CachedToken {
    /// The token.
    pub token: AccessToken,
    /// Renewal, after the request was sent.
    pub refresh_after: Duration,
    /// Expiry, after the request was sent.
    pub expires_after: Duration,
}

fn cache(fetched: &Fetched) -> CachedToken {
    let started = Instant::now();
    let cached = Cached::new(fetched, started, RefreshAhead::default());
    CachedToken {
        token: cached.token,
        refresh_after: cached.refresh_at - started,
        expires_after: cached.expires_at - started,
    }
}

/// A 200 response of the token endpoint to a client credentials request,
/// parsed as `oauth2` parses it, then cached as `ClientCredentials` caches it.
pub fn client_credentials_response(body: &[u8]) -> Result<CachedToken, String> {
    let response: oauth2::basic::BasicTokenResponse =
        serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let fetched =
        crate::client::credentials::fetched_from(&response, Duration::from_secs(60), None)
            .map_err(|e| e.to_string())?;
    Ok(cache(&fetched))
}

/// A 200 response of the token endpoint to an RFC 8693 token exchange,
/// parsed and cached as `TokenExchange` does.
pub fn token_exchange_response(body: &[u8]) -> Result<CachedToken, String> {
    let fetched =
        crate::client::exchange::exchange_response(body, None).map_err(|e| e.to_string())?;
    Ok(cache(&fetched))
}

/// An introspection client for the issuer [`Self::ISSUER`], audience
/// [`Self::AUDIENCE`], 60 s leeway and a 60 s cache lifetime (the defaults).
pub struct IntrospectionResponses {
    introspector: Introspector,
}

impl fmt::Debug for IntrospectionResponses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionResponses")
            .finish_non_exhaustive()
    }
}

/// A decision on an introspection response.
#[derive(Debug)]
#[non_exhaustive]
pub struct Decision {
    /// The principal, or why the token is refused.
    pub outcome: Result<Principal<ExtraClaims>, AuthnError>,
    /// How long the decision would be cached.
    pub cache_ttl: Duration,
}

impl IntrospectionResponses {
    /// The issuer the client trusts.
    pub const ISSUER: &'static str = "https://idp.example";
    /// The audience it demands.
    pub const AUDIENCE: &'static str = "api";
    /// The leeway, in seconds.
    pub const LEEWAY: i64 = 60;
    /// The longest a decision is cached.
    pub const CACHE_TTL: Duration = Duration::from_secs(60);

    /// The client (it never sends a request).
    pub fn new() -> Self {
        let config = Introspection::new("fuzz", "secret")
            .endpoint("https://idp.example/introspect")
            .cache_ttl(Self::CACHE_TTL);
        let introspector = Introspector::new(
            config,
            Arc::from(Self::ISSUER),
            Box::from([Self::AUDIENCE.to_owned()]),
            Self::LEEWAY,
            reqwest::Client::new(),
        )
        .expect("valid introspection configuration");
        Self { introspector }
    }

    /// Decides on a response body at `now` (Unix seconds) as `validate` does.
    pub fn decide(&self, body: &[u8], now: i64) -> Decision {
        let response = match crate::introspection::parse_response(body) {
            Ok(response) => response,
            Err(_) => {
                return Decision {
                    outcome: Err(AuthnError::IntrospectionUnavailable),
                    cache_ttl: Duration::ZERO,
                };
            }
        };
        let outcome = self.introspector.decide(response, now);
        let cache_ttl = self.introspector.ttl_of(&outcome, now);
        let outcome = outcome.and_then(|claims| self.introspector.principal("token", &claims, now));
        Decision { outcome, cache_ttl }
    }
}

impl Default for IntrospectionResponses {
    fn default() -> Self {
        Self::new()
    }
}
