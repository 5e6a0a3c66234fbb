//! [`ClientCredentials`]: the OAuth 2.0 client credentials grant, cached.

use super::error::ClientError;
use super::oauth_http::{HttpError, OAuthHttp};
use super::slot::{Fetched, Slot};
use super::token::{AccessToken, BoxFuture, TokenProvider};
use super::token_endpoint::{TokenEndpoint, TokenEndpointConfig, token_endpoint_setters};
use crate::endpoint::AuthMethod;
use crate::error::Redacted;
use oauth2::TokenResponse as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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

/// Settings shared by the handles of one [`ClientCredentials`].
struct Shared {
    endpoint: TokenEndpoint,
    default_lifetime: Duration,
    slots: moka::sync::Cache<TokenRequest, Arc<Slot>>,
    #[cfg(feature = "dpop")]
    dpop: Option<super::DpopSigner>,
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
            .field("auth", &self.shared.endpoint.auth)
            .field("endpoint", &self.shared.endpoint.source)
            .field("request", &self.request)
            .field("refresh", &self.shared.endpoint.refresh)
            .field("retry", &self.shared.endpoint.retry)
            .finish_non_exhaustive()
    }
}

/// Builds [`ClientCredentials`].
#[must_use]
pub struct ClientCredentialsBuilder {
    endpoint: TokenEndpointConfig,
    request: TokenRequest,
    default_lifetime: Duration,
    max_requests: u64,
    #[cfg(feature = "dpop")]
    dpop: Option<super::DpopSigner>,
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field("auth", &self.endpoint.auth)
            .field("request", &self.request)
            .field("secret", &Redacted)
            .finish_non_exhaustive()
    }
}

impl ClientCredentialsBuilder {
    token_endpoint_setters!();

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

    /// The lifetime assumed when a response has no `expires_in` (default 60 s).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Most distinct (audience, scopes) requests cached (default 1024).
    pub fn max_cached_requests(mut self, max: u64) -> Self {
        self.max_requests = max;
        self
    }

    /// Asks for tokens bound to `signer`'s key (DPoP, RFC 9449 §5): every
    /// token request carries a proof (echoing the server's nonce, after one
    /// `use_dpop_nonce` retry if the server demands one), and the answer
    /// must be a `DPoP` token, or the request fails (a server that ignores
    /// DPoP answers `Bearer`: refused rather than sent unbound). The tokens
    /// go out with a fresh proof per request through
    /// [`InjectTokenLayer`](super::InjectTokenLayer) and
    /// [`AuthorizedClient`](super::AuthorizedClient).
    #[cfg(feature = "dpop")]
    pub fn dpop(mut self, signer: super::DpopSigner) -> Self {
        self.dpop = Some(signer);
        self
    }

    /// Checks the configuration. Performs no I/O.
    pub fn build(self) -> Result<ClientCredentials, ClientError> {
        let shared = Arc::new(Shared {
            endpoint: self.endpoint.check()?,
            default_lifetime: self.default_lifetime,
            slots: moka::sync::Cache::builder()
                .max_capacity(self.max_requests.max(1))
                .build(),
            #[cfg(feature = "dpop")]
            dpop: self.dpop,
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
            endpoint: TokenEndpointConfig::new(client_id.into(), client_secret.into()),
            request: TokenRequest::new(),
            default_lifetime: Duration::from_secs(60),
            max_requests: 1024,
            #[cfg(feature = "dpop")]
            dpop: None,
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
        self.slot
            .get(self.shared.endpoint.refresh, || self.fetch())
            .await
    }

    /// Forgets `token` if it is the cached one (after a downstream refused it).
    pub fn invalidate(&self, token: &AccessToken) {
        self.slot.invalidate(token);
    }

    async fn fetch(&self) -> Result<Fetched, ClientError> {
        let shared = &*self.shared;
        shared.endpoint.retry.run(|| self.fetch_once()).await
    }

    async fn fetch_once(&self) -> Result<Fetched, ClientError> {
        match self.request_token().await {
            // RFC 9449 §8: the server wants its nonce in the proof; the
            // answer carried it, and the next proof echoes it.
            #[cfg(feature = "dpop")]
            Err(ClientError::OAuth { code, .. })
                if code == "use_dpop_nonce" && self.shared.dpop.is_some() =>
            {
                self.request_token().await
            }
            result => result,
        }
    }

    async fn request_token(&self) -> Result<Fetched, ClientError> {
        let endpoint = &self.shared.endpoint;
        let url = endpoint.url().await?;
        let client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(endpoint.auth.id.clone()))
                .set_client_secret(oauth2::ClientSecret::new(endpoint.auth.secret.clone()))
                .set_auth_type(match endpoint.auth.method {
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
            client: endpoint.http.clone(),
            timeout: endpoint.timeout,
            #[cfg(feature = "dpop")]
            dpop: self.shared.dpop.clone(),
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
        #[cfg(feature = "dpop")]
        let signer = self.shared.dpop.as_ref();
        #[cfg(not(feature = "dpop"))]
        let signer = None;
        let fetched = fetched_from(&response, self.shared.default_lifetime, signer)?;
        tracing::debug!(
            target: "tessera_authn::client",
            client_id = %endpoint.auth.id,
            audience = ?self.request.audience,
            lifetime_secs = fetched.lifetime.as_secs(),
            "client credentials token obtained"
        );
        Ok(fetched)
    }
}

/// The token of a successful client credentials response: a bearer token,
/// living `expires_in` or `default_lifetime`.
/// The key a token is requested for: a [`DpopSigner`](super::DpopSigner)
/// with the `dpop` feature, nothing (no value exists) without.
#[cfg(feature = "dpop")]
pub(crate) type Signer = super::DpopSigner;
/// The key a token is requested for: none without the `dpop` feature.
#[cfg(not(feature = "dpop"))]
pub(crate) type Signer = std::convert::Infallible;

/// The token of a successful response, as its `token_type` says it must be
/// sent (a bearer token without a DPoP key, a DPoP-bound one with it;
/// anything else refused), and how long it lives.
pub(crate) fn fetched_from(
    response: &oauth2::basic::BasicTokenResponse,
    default_lifetime: Duration,
    signer: Option<&Signer>,
) -> Result<Fetched, ClientError> {
    use oauth2::basic::BasicTokenType;
    let secret = response.access_token().secret().as_str();
    let token_type = response.token_type();
    let token = match signer {
        #[cfg(feature = "dpop")]
        Some(signer) => match token_type {
            BasicTokenType::Extension(t) if t.eq_ignore_ascii_case("dpop") => {
                AccessToken::dpop_bound(secret, signer.clone())
            }
            other => {
                return Err(ClientError::InvalidResponse(format!(
                    "token type {} is not DPoP: the server did not bind the token to the key",
                    other.as_ref()
                )));
            }
        },
        #[cfg(not(feature = "dpop"))]
        Some(never) => match *never {},
        None if *token_type == BasicTokenType::Bearer => AccessToken::new(secret),
        None => {
            return Err(ClientError::InvalidResponse(format!(
                "token type {} is not bearer",
                token_type.as_ref()
            )));
        }
    };
    Ok(Fetched {
        token,
        lifetime: response.expires_in().unwrap_or(default_lifetime),
    })
}

impl TokenProvider for ClientCredentials {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>> {
        Box::pin(ClientCredentials::token(self))
    }

    fn invalidate(&self, token: &AccessToken) {
        ClientCredentials::invalidate(self, token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
