//! [`ClientCredentials`]: the OAuth 2.0 client credentials grant, cached.

use super::{AccessToken, BoxFuture, ClientError, TokenProvider};
use crate::endpoint::{AuthMethod, ClientAuth, EndpointSource, PostError, Which};
use crate::error::Redacted;
use backon::{ExponentialBuilder, Retryable as _};
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse, TokenResponse as _};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// When a cached token is renewed: once `fraction` of its lifetime has
/// passed or `margin` before it expires, whichever comes first.
///
/// The default is 80 % of the lifetime or 30 s before expiry. During the
/// refresh window one caller renews the token while the others keep using
/// the cached one; a failed renewal is retried by the next caller and the
/// old token is served until it expires.
///
/// ```
/// use std::time::Duration;
/// use tessera_authn::client::RefreshAhead;
///
/// let policy = RefreshAhead::default();
/// // A one-hour token is renewed at 80 %, 48 min in (30 s before expiry is later).
/// assert_eq!(policy.refresh_after(Duration::from_secs(3600)), Duration::from_secs(2880));
/// // A 100 s token 30 s before expiry, 70 s in (80 % would be 80 s).
/// assert_eq!(policy.refresh_after(Duration::from_secs(100)), Duration::from_secs(70));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct RefreshAhead {
    fraction: f64,
    margin: Duration,
}

impl Default for RefreshAhead {
    fn default() -> Self {
        Self {
            fraction: 0.8,
            margin: Duration::from_secs(30),
        }
    }
}

impl RefreshAhead {
    /// Renew once `fraction` (clamped to 0..=1) of the lifetime has passed
    /// or `margin` before expiry, whichever is earlier.
    pub fn new(fraction: f64, margin: Duration) -> Self {
        let fraction = if fraction.is_nan() {
            0.8
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Self { fraction, margin }
    }

    /// How long after issuance a token of this lifetime is renewed.
    #[must_use]
    pub fn refresh_after(&self, lifetime: Duration) -> Duration {
        lifetime
            .mul_f64(self.fraction)
            .min(lifetime.saturating_sub(self.margin))
    }
}

/// How transient failures (network errors, 5xx, 429,
/// `temporarily_unavailable`) are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RetryPolicy {
    retries: usize,
    min_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Up to `retries` retries, the first after `min_delay`, doubling up to `max_delay`.
    pub fn new(retries: usize, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            retries,
            min_delay,
            max_delay: max_delay.max(min_delay),
        }
    }

    /// No retries.
    pub fn none() -> Self {
        Self::new(0, Duration::ZERO, Duration::ZERO)
    }

    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        f.retry(
            ExponentialBuilder::default()
                .with_min_delay(self.min_delay)
                .with_max_delay(self.max_delay)
                .with_max_times(self.retries)
                .with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(ClientError::is_transient)
        .notify(|error, delay| {
            tracing::debug!(
                target: "tessera_authn::client",
                %error,
                retry_in_ms = delay.as_millis(),
                "token request failed; retrying"
            );
        })
        .await
    }
}

/// What a token is requested for: an audience and scopes. Each distinct
/// request has its own cached token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct TokenRequest {
    audience: Option<String>,
    scopes: Vec<String>,
}

impl TokenRequest {
    /// No audience parameter, no scopes (the server's defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `audience` (the parameter Auth0, Okta and RFC 8693 use).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Requests a scope. Order and duplicates do not matter.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
            self.scopes.sort();
        }
        self
    }

    /// Requests several scopes.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        scopes.into_iter().fold(self, Self::scope)
    }
}

/// One cached token and the single flight that renews it.
pub(crate) struct Slot {
    current: RwLock<Option<Arc<Cached>>>,
    gate: tokio::sync::Mutex<()>,
    /// Bumped by every completed fetch, successful or not.
    generation: AtomicU64,
    last_error: Mutex<Option<ClientError>>,
}

pub(crate) struct Cached {
    pub(crate) token: AccessToken,
    pub(crate) refresh_at: Instant,
    pub(crate) expires_at: Instant,
}

/// A fresh token and its lifetime.
pub(crate) struct Fetched {
    pub(crate) token: AccessToken,
    pub(crate) lifetime: Duration,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(None),
            gate: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<Cached>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cached token, or one fetched by `fetch`, with at most one fetch
    /// in flight. Callers waiting for a fetch that fails get its error.
    pub(crate) async fn get<F, Fut>(
        &self,
        policy: RefreshAhead,
        fetch: F,
    ) -> Result<AccessToken, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, ClientError>>,
    {
        let now = Instant::now();
        if let Some(cached) = self.cached() {
            if now < cached.refresh_at {
                return Ok(cached.token.clone());
            }
            if now < cached.expires_at {
                // Refresh window: one caller renews, the others go on with
                // the still valid token.
                let Ok(_flight) = self.gate.try_lock() else {
                    return Ok(cached.token.clone());
                };
                if let Some(newer) = self.cached().filter(|c| Instant::now() < c.refresh_at) {
                    return Ok(newer.token.clone());
                }
                return match self.fetch_and_store(policy, fetch).await {
                    Ok(token) => Ok(token),
                    Err(error) => {
                        tracing::warn!(
                            target: "tessera_authn::client",
                            %error,
                            "token renewal failed; using the cached token until it expires"
                        );
                        Ok(cached.token.clone())
                    }
                };
            }
        }
        let seen = self.generation.load(Ordering::Acquire);
        let _flight = self.gate.lock().await;
        if let Some(cached) = self.cached().filter(|c| Instant::now() < c.expires_at) {
            return Ok(cached.token.clone());
        }
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(error) = self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        {
            // The fetch we waited for failed: share its outcome rather than
            // sending one more request per waiter.
            return Err(error);
        }
        self.fetch_and_store(policy, fetch).await
    }

    /// Call with `gate` held.
    async fn fetch_and_store<F, Fut>(
        &self,
        policy: RefreshAhead,
        fetch: F,
    ) -> Result<AccessToken, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, ClientError>>,
    {
        let started = Instant::now();
        let result = fetch().await;
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let outcome = match result {
            Ok(fetched) => {
                // Lifetimes count from the request, not the response: a
                // slow answer must not stretch them.
                let cached = Arc::new(Cached {
                    token: fetched.token.clone(),
                    refresh_at: started + policy.refresh_after(fetched.lifetime),
                    expires_at: started + fetched.lifetime,
                });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
                *last_error = None;
                Ok(fetched.token)
            }
            Err(error) => {
                *last_error = Some(error.clone());
                Err(error)
            }
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// Forgets the cached token if it is `token`.
    pub(crate) fn invalidate(&self, token: &AccessToken) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| &c.token == token) {
            *current = None;
        }
    }
}

/// Settings shared by the handles of one [`ClientCredentials`].
struct Shared {
    auth: ClientAuth,
    endpoint: EndpointSource,
    http: reqwest::Client,
    timeout: Duration,
    refresh: RefreshAhead,
    retry: RetryPolicy,
    default_lifetime: Duration,
    slots: moka::sync::Cache<TokenRequest, Arc<Slot>>,
}

/// An OAuth 2.0 client credentials token provider (RFC 6749 §4.4); see the
/// [module docs](super).
///
/// Cheap to clone. Each handle is bound to one [`TokenRequest`] (audience
/// and scopes); [`for_request`](Self::for_request) makes handles for other
/// requests that share the HTTP client and the cache.
#[derive(Clone)]
pub struct ClientCredentials {
    shared: Arc<Shared>,
    request: Arc<TokenRequest>,
    slot: Arc<Slot>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("auth", &self.shared.auth)
            .field("endpoint", &self.shared.endpoint)
            .field("request", &self.request)
            .field("refresh", &self.shared.refresh)
            .field("retry", &self.shared.retry)
            .finish_non_exhaustive()
    }
}

/// Builds [`ClientCredentials`].
#[must_use]
pub struct ClientCredentialsBuilder {
    auth: ClientAuth,
    endpoint: Option<Result<EndpointSource, String>>,
    request: TokenRequest,
    http: Option<reqwest::Client>,
    timeout: Duration,
    refresh: RefreshAhead,
    retry: RetryPolicy,
    default_lifetime: Duration,
    max_requests: u64,
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field("auth", &self.auth)
            .field("request", &self.request)
            .field("secret", &Redacted)
            .finish_non_exhaustive()
    }
}

impl ClientCredentialsBuilder {
    /// The token endpoint URL.
    pub fn token_endpoint(mut self, url: &str) -> Self {
        self.endpoint = Some(EndpointSource::url(url));
        self
    }

    /// Finds the token endpoint by OIDC discovery from the issuer URL (on
    /// first use; the document's `issuer` must equal `issuer` exactly).
    pub fn discovery(mut self, issuer: &str) -> Self {
        self.endpoint = Some(EndpointSource::discovery(issuer));
        self
    }

    /// `client_secret_basic` (default) or `client_secret_post`.
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.auth.method = method;
        self
    }

    /// The audience of the default request.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.request = self.request.audience(audience);
        self
    }

    /// A scope of the default request.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.request = self.request.scope(scope);
        self
    }

    /// When cached tokens are renewed (default: 80 % of the lifetime or
    /// 30 s before expiry, whichever is earlier).
    pub fn refresh_ahead(mut self, policy: RefreshAhead) -> Self {
        self.refresh = policy;
        self
    }

    /// How transient failures are retried (default: 3 retries from 100 ms).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The lifetime assumed when a response has no `expires_in` (default 60 s).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Timeout of one token request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The HTTP client (custom CA, proxy). It should not follow redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Most distinct (audience, scopes) requests cached (default 1024).
    pub fn max_cached_requests(mut self, max: u64) -> Self {
        self.max_requests = max;
        self
    }

    /// Checks the configuration. Performs no I/O.
    pub fn build(self) -> Result<ClientCredentials, ClientError> {
        let (endpoint, http) = super::checked_parts(&self.auth, self.endpoint, self.http)?;
        let shared = Arc::new(Shared {
            auth: self.auth,
            endpoint,
            http,
            timeout: self.timeout,
            refresh: self.refresh,
            retry: self.retry,
            default_lifetime: self.default_lifetime,
            slots: moka::sync::Cache::builder()
                .max_capacity(self.max_requests.max(1))
                .build(),
        });
        Ok(ClientCredentials::handle(shared, self.request))
    }
}

impl ClientCredentials {
    /// Starts building a provider for this client.
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            auth: ClientAuth {
                id: client_id.into(),
                secret: client_secret.into(),
                method: AuthMethod::default(),
            },
            endpoint: None,
            request: TokenRequest::new(),
            http: None,
            timeout: Duration::from_secs(10),
            refresh: RefreshAhead::default(),
            retry: RetryPolicy::default(),
            default_lifetime: Duration::from_secs(60),
            max_requests: 1024,
        }
    }

    fn handle(shared: Arc<Shared>, request: TokenRequest) -> Self {
        let slot = shared
            .slots
            .get_with_by_ref(&request, || Arc::new(Slot::new()));
        Self {
            shared,
            request: Arc::new(request),
            slot,
        }
    }

    /// A handle for another audience and scopes, sharing this one's HTTP
    /// client and cache.
    #[must_use]
    pub fn for_request(&self, request: TokenRequest) -> Self {
        Self::handle(Arc::clone(&self.shared), request)
    }

    /// The request this handle's tokens are for.
    pub fn request(&self) -> &TokenRequest {
        &self.request
    }

    /// A token for this handle's request: from the cache, or fetched (one
    /// fetch at a time, however many callers wait).
    pub async fn token(&self) -> Result<AccessToken, ClientError> {
        self.slot.get(self.shared.refresh, || self.fetch()).await
    }

    /// Forgets `token` if it is the cached one (after a downstream refused it).
    pub fn invalidate(&self, token: &AccessToken) {
        self.slot.invalidate(token);
    }

    async fn fetch(&self) -> Result<Fetched, ClientError> {
        let shared = &*self.shared;
        shared.retry.run(|| self.fetch_once()).await
    }

    async fn fetch_once(&self) -> Result<Fetched, ClientError> {
        let shared = &*self.shared;
        let url = shared
            .endpoint
            .resolve(&shared.http, Which::Token, shared.timeout)
            .await
            .map_err(ClientError::Discovery)?;
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(shared.auth.id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(shared.auth.secret.clone()))
            .set_auth_type(match shared.auth.method {
                AuthMethod::ClientSecretPost => oauth2::AuthType::RequestBody,
                AuthMethod::ClientSecretBasic => oauth2::AuthType::BasicAuth,
            })
            .set_token_uri(oauth2::TokenUrl::from_url(url));
        let mut request = client.exchange_client_credentials();
        for scope in &self.request.scopes {
            request = request.add_scope(oauth2::Scope::new(scope.clone()));
        }
        if let Some(audience) = &self.request.audience {
            request = request.add_extra_param("audience", audience.clone());
        }
        let http = OAuthHttp {
            client: shared.http.clone(),
            timeout: shared.timeout,
        };
        let response = request.request_async(&http).await.map_err(|e| match e {
            oauth2::RequestTokenError::Request(HttpError(error)) => ClientError::from_post(error),
            oauth2::RequestTokenError::ServerResponse(e) => ClientError::OAuth {
                status: 400,
                code: e.error().as_ref().to_owned(),
                description: e.error_description().cloned(),
            },
            // The body is not echoed: it may hold a token.
            oauth2::RequestTokenError::Parse(e, _) => {
                ClientError::InvalidResponse(format!("at {}: {}", e.path(), e.inner()))
            }
            oauth2::RequestTokenError::Other(message) => ClientError::InvalidResponse(message),
        })?;
        if *response.token_type() != oauth2::basic::BasicTokenType::Bearer {
            return Err(ClientError::InvalidResponse(format!(
                "token type {} is not bearer",
                response.token_type().as_ref()
            )));
        }
        let lifetime = response.expires_in().unwrap_or(shared.default_lifetime);
        tracing::debug!(
            target: "tessera_authn::client",
            client_id = %shared.auth.id,
            audience = ?self.request.audience,
            lifetime_secs = lifetime.as_secs(),
            "client credentials token obtained"
        );
        Ok(Fetched {
            token: AccessToken::new(response.access_token().secret().as_str()),
            lifetime,
        })
    }
}

impl TokenProvider for ClientCredentials {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>> {
        Box::pin(ClientCredentials::token(self))
    }

    fn invalidate(&self, token: &AccessToken) {
        ClientCredentials::invalidate(self, token);
    }
}

/// Our reqwest client as oauth2's HTTP client: oauth2 5 targets reqwest
/// 0.12, so we adapt rather than pull in a second reqwest. Only 200 answers
/// go back to oauth2; errors are classified here, keeping the status.
struct OAuthHttp {
    client: reqwest::Client,
    timeout: Duration,
}

#[derive(Debug)]
struct HttpError(PostError);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token request failed")
    }
}

impl std::error::Error for HttpError {}

impl<'c> AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future = BoxFuture<'c, Result<HttpResponse, HttpError>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .timeout(self.timeout)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(PostError::Unreachable(e.without_url().to_string())))?;
            let status = response.status();
            if status.as_u16() >= 500 || status.as_u16() == 429 {
                return Err(HttpError(PostError::Status(status.as_u16())));
            }
            let headers = response.headers().clone();
            let body = crate::endpoint::read_limited(response)
                .await
                .map_err(|e| HttpError(PostError::Body(e)))?;
            if status != http::StatusCode::OK {
                return Err(HttpError(match crate::endpoint::oauth_error(&body) {
                    Some((code, description)) => PostError::OAuth {
                        status: status.as_u16(),
                        code,
                        description,
                    },
                    None => PostError::Unexpected(status.as_u16()),
                }));
            }
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ahead_takes_the_earlier_of_fraction_and_margin() {
        let p = RefreshAhead::default();
        assert_eq!(
            p.refresh_after(Duration::from_secs(100)),
            Duration::from_secs(70)
        );
        assert_eq!(p.refresh_after(Duration::from_secs(10)), Duration::ZERO);
        let p = RefreshAhead::new(0.5, Duration::ZERO);
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        let p = RefreshAhead::new(f64::NAN, Duration::ZERO);
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(8)
        );
        let p = RefreshAhead::new(7.0, Duration::ZERO);
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn token_requests_ignore_scope_order_and_duplicates() {
        let a = TokenRequest::new().scopes(["b", "a", "b"]).audience("x");
        let b = TokenRequest::new().audience("x").scope("a").scope("b");
        assert_eq!(a, b);
        assert_ne!(a, TokenRequest::new().audience("y").scopes(["a", "b"]));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let e = ClientCredentials::builder("", "s")
            .token_endpoint("https://idp.example/token")
            .build()
            .unwrap_err();
        assert_eq!(e, ClientError::Config("empty client id".into()));
        assert!(matches!(
            ClientCredentials::builder("id", "s").build(),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            ClientCredentials::builder("id", "s")
                .token_endpoint("file:///etc/passwd")
                .build(),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let builder = ClientCredentials::builder("id", "hunter2").token_endpoint("https://x/t");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let cc = builder.build().unwrap();
        assert!(!format!("{cc:?}").contains("hunter2"));
    }
}
