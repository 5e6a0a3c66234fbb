//! Remote keys: a JWKS URL or OIDC discovery, behind a cache that refreshes
//! in the background, on unknown `kid`s with single flight and a cooldown,
//! and keeps the last good key set while the endpoint fails.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tessera_authn::{Issuer, JwksCache, JwksOptions, JwtValidator};
//!
//! let options = JwksOptions::default().refresh_cooldown(Duration::from_secs(5));
//! let cache = JwksCache::discovery("https://idp.example/realms/main", options)?;
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example/realms/main").audience("api").jwks_cache(cache))
//!     .build()?;
//! validator.warm_up().await?;
//! # Ok(()) }
//! ```

use crate::cache::KeyEpoch;
use crate::error::{ConfigError, KeyError};
use crate::keys::KeySet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use url::Url;

/// The User-Agent sent with discovery and JWKS requests.
pub const USER_AGENT: &str = concat!("tessera-authn/", env!("CARGO_PKG_VERSION"));

/// Tuning for a [`JwksCache`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksOptions {
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    refresh_cooldown: Duration,
    pub(crate) max_bytes: usize,
    max_keys: usize,
    timeout: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(15 * 60),
            refresh_cooldown: Duration::from_secs(10),
            max_bytes: 256 * 1024,
            max_keys: crate::keys::DEFAULT_MAX_KEYS,
            timeout: Duration::from_secs(10),
        }
    }
}

impl JwksOptions {
    /// Bounds on the key set's lifetime taken from `Cache-Control: max-age`
    /// (defaults 60 s and 24 h).
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max.max(min);
        self
    }

    /// Lifetime when the response has no `max-age` (default 15 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Least time between two fetches caused by unknown `kid`s or failures
    /// (default 10 s). A flood of tokens with random kids causes at most one
    /// fetch per cooldown.
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh_cooldown = cooldown;
        self
    }

    /// Largest accepted document, in bytes (default 256 KiB).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Most keys accepted in one document (default 64).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// Timeout for one whole request, connect included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

pub(crate) fn default_client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| ConfigError::Key(KeyError::Http(e.to_string())))
}

#[derive(Debug)]
pub(crate) enum Location {
    Jwks(Url),
    Discovery { issuer: String, url: Url },
}

impl Location {
    pub(crate) fn jwks(url: &str) -> Result<Self, KeyError> {
        Ok(Self::Jwks(parse_http_url(url)?))
    }

    pub(crate) fn discovery(issuer: &str) -> Result<Self, KeyError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        Ok(Self::Discovery {
            issuer: issuer.to_owned(),
            url: parse_http_url(&url)?,
        })
    }
}

fn parse_http_url(url: &str) -> Result<Url, KeyError> {
    let parsed = Url::parse(url).map_err(|e| KeyError::InvalidUrl(format!("{url}: {e}")))?;
    match parsed.scheme() {
        "https" | "http" => Ok(parsed),
        other => Err(KeyError::InvalidUrl(format!(
            "{url}: scheme {other} not allowed"
        ))),
    }
}

/// The members of an OIDC discovery document that key discovery needs.
///
/// ```
/// use tessera_authn::jwks::OidcDiscovery;
///
/// let doc = br#"{"issuer":"https://idp.example/","jwks_uri":"https://idp.example/keys","extra":{"nested":null}}"#;
/// let discovery = OidcDiscovery::from_slice(doc).unwrap();
/// assert_eq!(discovery.jwks_uri_for("https://idp.example/").unwrap().as_str(), "https://idp.example/keys");
/// assert!(discovery.jwks_uri_for("https://idp.example").is_err()); // exact match, slash included
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[non_exhaustive]
pub struct OidcDiscovery {
    /// The `issuer` the document announces.
    pub issuer: String,
    /// The `jwks_uri`.
    pub jwks_uri: String,
}

impl OidcDiscovery {
    /// Parses a discovery document, ignoring members we do not use.
    pub fn from_slice(document: &[u8]) -> Result<Self, KeyError> {
        serde_json::from_slice(document).map_err(|e| KeyError::InvalidDiscovery(e.to_string()))
    }

    /// The JWKS URL, provided the document's `issuer` equals `issuer`
    /// exactly (OIDC Discovery §4.3) and the URL is http(s).
    pub fn jwks_uri_for(&self, issuer: &str) -> Result<Url, KeyError> {
        if self.issuer != issuer {
            return Err(KeyError::InvalidDiscovery(format!(
                "document names issuer {:?}, expected {issuer:?}",
                self.issuer
            )));
        }
        parse_http_url(&self.jwks_uri)
    }
}

/// A cached, self-refreshing remote key set. Cheap to clone.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Shared>,
}

struct Shared {
    location: Location,
    client: reqwest::Client,
    options: JwksOptions,
    state: RwLock<State>,
    /// Single flight: one fetch at a time; waiters reuse its result.
    gate: tokio::sync::Mutex<()>,
    background: AtomicBool,
    discovered_jwks: Mutex<Option<Url>>,
    fetches: AtomicU64,
    /// Moved (under the `state` write lock) when a refresh drops a key or
    /// replaces one under its kid; the validated-token cache forgets every
    /// token verified before.
    key_epoch: Arc<AtomicU64>,
}

struct State {
    keys: KeySet,
    loaded: bool,
    /// Bumped by every fetch attempt, successful or not.
    generation: u64,
    refresh_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    pub(crate) loaded: bool,
    pub(crate) generation: u64,
    /// The key epoch of `keys`.
    pub(crate) key_epoch: u64,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("location", &self.inner.location)
            .field("options", &self.inner.options)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache for the JWKS document at `url`.
    pub fn new(url: &str, options: JwksOptions) -> Result<Self, ConfigError> {
        Ok(Self::with_client(
            Location::jwks(url)?,
            default_client()?,
            options,
        ))
    }

    /// A cache for the keys of `issuer`, found by OIDC discovery.
    pub fn discovery(issuer: &str, options: JwksOptions) -> Result<Self, ConfigError> {
        Ok(Self::with_client(
            Location::discovery(issuer)?,
            default_client()?,
            options,
        ))
    }

    /// Uses this HTTP client (custom CA, proxy) instead of the default one.
    #[must_use]
    pub fn http_client(self, client: reqwest::Client) -> Self {
        Self::with_client(
            match &self.inner.location {
                Location::Jwks(u) => Location::Jwks(u.clone()),
                Location::Discovery { issuer, url } => Location::Discovery {
                    issuer: issuer.clone(),
                    url: url.clone(),
                },
            },
            client,
            self.inner.options.clone(),
        )
    }

    pub(crate) fn with_client(
        location: Location,
        client: reqwest::Client,
        options: JwksOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Shared {
                location,
                client,
                options,
                state: RwLock::new(State {
                    keys: KeySet::default(),
                    loaded: false,
                    generation: 0,
                    refresh_at: None,
                    last_attempt: None,
                }),
                gate: tokio::sync::Mutex::new(()),
                background: AtomicBool::new(false),
                discovered_jwks: Mutex::new(None),
                fetches: AtomicU64::new(0),
                key_epoch: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// How many fetches (JWKS and discovery documents) this cache has made.
    #[must_use]
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The key set currently served (empty before the first fetch).
    #[must_use]
    pub fn keys(&self) -> KeySet {
        self.snapshot().keys
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Snapshot {
            keys: state.keys.clone(),
            loaded: state.loaded,
            generation: state.generation,
            key_epoch: self.inner.key_epoch.load(Ordering::Acquire),
        }
    }

    /// The key epoch `seen` of this cache, to check later whether a key was
    /// dropped since.
    pub(crate) fn key_epoch(&self, seen: u64) -> KeyEpoch {
        KeyEpoch::new(Arc::clone(&self.inner.key_epoch), seen)
    }

    /// Fetches now, ignoring the cooldown, and reports the outcome. On
    /// failure the previous key set stays in use.
    pub async fn refresh_now(&self) -> Result<(), KeyError> {
        let _flight = self.inner.gate.lock().await;
        self.inner.fetch_and_store().await
    }

    /// Fetches unless another fetch happened since generation `seen` was
    /// observed (its result is reused) or the cooldown has not passed.
    pub(crate) async fn refresh_after(&self, seen: u64) {
        self.inner.refresh_after(seen).await;
    }

    pub(crate) fn refresh_in_background_if_due(&self) {
        let (due, generation) = {
            let state = self
                .inner
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let due = state.refresh_at.is_some_and(|at| now >= at)
                && state
                    .last_attempt
                    .is_none_or(|t| now.duration_since(t) >= self.inner.options.refresh_cooldown);
            (due, state.generation)
        };
        if !due || self.inner.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.background.store(false, Ordering::Release);
            return;
        };
        let shared = Arc::clone(&self.inner);
        runtime.spawn(async move {
            shared.refresh_after(generation).await;
            shared.background.store(false, Ordering::Release);
        });
    }
}

impl Shared {
    async fn refresh_after(&self, seen: u64) {
        let _flight = self.gate.lock().await;
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.generation != seen {
                return;
            }
            if state
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.options.refresh_cooldown)
            {
                return;
            }
        }
        // The outcome is logged and recorded in the state; callers look again.
        let _ = self.fetch_and_store().await;
    }

    /// Call with `gate` held.
    async fn fetch_and_store(&self) -> Result<(), KeyError> {
        let result = self.fetch().await;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.generation += 1;
        let now = Instant::now();
        state.last_attempt = Some(now);
        match result {
            Ok((keys, ttl)) => {
                tracing::debug!(
                    target: "tessera_authn::jwks",
                    keys = keys.len(),
                    usable = keys.usable_len(),
                    ttl_secs = ttl.as_secs(),
                    "key set refreshed"
                );
                if state.keys.loses_keys_in(&keys) {
                    self.key_epoch.fetch_add(1, Ordering::AcqRel);
                }
                state.keys = keys;
                state.loaded = true;
                // Refresh ahead of expiry, at three quarters of the lifetime.
                state.refresh_at = Some(now + ttl.mul_f64(0.75));
                Ok(())
            }
            Err(error) => {
                tracing::warn!(
                    target: "tessera_authn::jwks",
                    %error,
                    keeping_keys = state.keys.len(),
                    "key set refresh failed; keeping the last good key set"
                );
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Duration), KeyError> {
        let jwks_url = match &self.location {
            Location::Jwks(url) => url.clone(),
            Location::Discovery { issuer, url } => {
                let known = self
                    .discovered_jwks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match known {
                    Some(url) => url,
                    None => {
                        let found = self.discover(issuer, url).await?;
                        *self
                            .discovered_jwks
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(found.clone());
                        found
                    }
                }
            }
        };
        let (body, ttl) = self.get(&jwks_url).await?;
        let keys = keys_from_document(&body, &self.options)?;
        Ok((keys, ttl))
    }

    async fn discover(&self, issuer: &str, url: &Url) -> Result<Url, KeyError> {
        let (body, _) = self.get(url).await?;
        OidcDiscovery::from_slice(&body)?.jwks_uri_for(issuer)
    }

    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Duration), KeyError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let limit = self.options.max_bytes;
        let mut response = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .timeout(self.options.timeout)
            .send()
            .await
            .map_err(|e| KeyError::Http(format!("{url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(KeyError::Http(format!("{url}: status {status}")));
        }
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(KeyError::TooLarge { limit });
        }
        let ttl = ttl_from(response.headers(), &self.options);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| KeyError::Http(format!("{url}: {e}")))?
        {
            append_limited(&mut body, &chunk, limit)?;
        }
        Ok((body, ttl))
    }
}

/// Appends a chunk of a response body unless the body would exceed `limit` bytes.
pub(crate) fn append_limited(
    body: &mut Vec<u8>,
    chunk: &[u8],
    limit: usize,
) -> Result<(), KeyError> {
    if body.len().saturating_add(chunk.len()) > limit {
        return Err(KeyError::TooLarge { limit });
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// The keys of a JWKS document, at most `options.max_keys` of them.
pub(crate) fn keys_from_document(body: &[u8], options: &JwksOptions) -> Result<KeySet, KeyError> {
    KeySet::from_jwks_limited(body, options.max_keys)
}

/// The key set's lifetime from `Cache-Control`, clamped to the bounds.
fn ttl_from(headers: &http::HeaderMap, options: &JwksOptions) -> Duration {
    let mut ttl = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                ttl = Some(Duration::ZERO);
            } else if let Some(secs) = lower.strip_prefix("max-age=")
                && let Ok(secs) = secs.trim_matches('"').parse::<u64>()
            {
                ttl = Some(ttl.map_or(Duration::from_secs(secs), |t: Duration| {
                    t.min(Duration::from_secs(secs))
                }));
            }
        }
    }
    ttl.unwrap_or(options.default_ttl)
        .clamp(options.min_ttl, options.max_ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cc: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, cc.parse().unwrap());
        h
    }

    #[test]
    fn cache_control_is_honoured_within_bounds() {
        let o = JwksOptions::default();
        assert_eq!(
            ttl_from(&headers("public, max-age=3600"), &o),
            Duration::from_secs(3600)
        );
        assert_eq!(ttl_from(&headers("max-age=1"), &o), Duration::from_secs(60));
        assert_eq!(
            ttl_from(&headers("max-age=99999999"), &o),
            Duration::from_secs(86400)
        );
        assert_eq!(ttl_from(&headers("no-store"), &o), Duration::from_secs(60));
        assert_eq!(
            ttl_from(&headers("max-age=garbage"), &o),
            Duration::from_secs(900)
        );
        assert_eq!(
            ttl_from(&http::HeaderMap::new(), &o),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(Location::jwks("file:///etc/passwd").is_err());
        assert!(Location::jwks("not a url").is_err());
        assert!(Location::discovery("https://idp.example/").is_ok());
    }

    #[test]
    fn discovery_url_is_derived_from_the_issuer() {
        let Location::Discovery { url, .. } =
            Location::discovery("https://idp.example/realms/a/").unwrap()
        else {
            panic!("not discovery")
        };
        assert_eq!(
            url.as_str(),
            "https://idp.example/realms/a/.well-known/openid-configuration"
        );
    }
}
