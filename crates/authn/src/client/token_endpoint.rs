//! What every token-endpoint client ([`ClientCredentials`](super::ClientCredentials),
//! [`TokenExchange`](super::TokenExchange)) is configured with: who we are,
//! where the endpoint is, and how requests are sent, retried and renewed;
//! and the builder setters for it, written once.

use super::error::ClientError;
use super::policy::{RefreshAhead, RetryPolicy};
use crate::endpoint::{AuthMethod, ClientAuth, EndpointSource, Which};
use std::time::Duration;
use url::Url;

/// The settings as a builder collects them.
pub(super) struct TokenEndpointConfig {
    pub(super) auth: ClientAuth,
    pub(super) source: Option<Result<EndpointSource, String>>,
    pub(super) http: Option<reqwest::Client>,
    pub(super) timeout: Duration,
    pub(super) refresh: RefreshAhead,
    pub(super) retry: RetryPolicy,
}

impl TokenEndpointConfig {
    /// This client, no endpoint yet, a 10 s timeout and the default policies.
    pub(super) fn new(client_id: String, client_secret: String) -> Self {
        Self {
            auth: ClientAuth {
                id: client_id,
                secret: client_secret,
                method: AuthMethod::default(),
            },
            source: None,
            http: None,
            timeout: Duration::from_secs(10),
            refresh: RefreshAhead::default(),
            retry: RetryPolicy::default(),
        }
    }

    /// What every builder checks before building: a client id, an endpoint
    /// (configured or by discovery), and an HTTP client (the default one
    /// unless the caller gave theirs).
    pub(super) fn check(self) -> Result<TokenEndpoint, ClientError> {
        if self.auth.id.is_empty() {
            return Err(ClientError::Config("empty client id".into()));
        }
        let source = self
            .source
            .ok_or_else(|| ClientError::Config("no token endpoint or issuer".into()))?
            .map_err(ClientError::Config)?;
        let http = match self.http {
            Some(client) => client,
            None => {
                crate::jwks::default_client().map_err(|e| ClientError::Config(e.to_string()))?
            }
        };
        Ok(TokenEndpoint {
            auth: self.auth,
            source,
            http,
            timeout: self.timeout,
            refresh: self.refresh,
            retry: self.retry,
        })
    }
}

/// The checked settings.
pub(super) struct TokenEndpoint {
    pub(super) auth: ClientAuth,
    pub(super) source: EndpointSource,
    pub(super) http: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) refresh: RefreshAhead,
    pub(super) retry: RetryPolicy,
}

impl TokenEndpoint {
    /// The token endpoint's URL, found by discovery on first use when configured so.
    pub(super) async fn url(&self) -> Result<Url, ClientError> {
        self.source
            .resolve(&self.http, Which::Token, self.timeout)
            .await
            .map_err(ClientError::Discovery)
    }
}

/// The setters of a builder whose [`TokenEndpointConfig`] is its field
/// `endpoint`. Use inside the builder's `impl` block.
macro_rules! token_endpoint_setters {
    () => {
        /// The token endpoint URL.
        pub fn token_endpoint(mut self, url: &str) -> Self {
            self.endpoint.source = Some(crate::endpoint::EndpointSource::url(url));
            self
        }

        /// Finds the token endpoint by OIDC discovery from the issuer URL (on
        /// first use; the document's `issuer` must equal `issuer` exactly).
        pub fn discovery(mut self, issuer: &str) -> Self {
            self.endpoint.source = Some(crate::endpoint::EndpointSource::discovery(issuer));
            self
        }

        /// `client_secret_basic` (default) or `client_secret_post`.
        pub fn auth_method(mut self, method: crate::endpoint::AuthMethod) -> Self {
            self.endpoint.auth.method = method;
            self
        }

        /// When cached tokens are renewed (default: 80 % of the lifetime or
        /// 30 s before expiry, whichever is earlier).
        pub fn refresh_ahead(mut self, policy: crate::client::RefreshAhead) -> Self {
            self.endpoint.refresh = policy;
            self
        }

        /// How transient failures are retried (default: 3 retries from 100 ms).
        pub fn retry(mut self, policy: crate::client::RetryPolicy) -> Self {
            self.endpoint.retry = policy;
            self
        }

        /// Timeout of one token request (default 10 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.endpoint.timeout = timeout;
            self
        }

        /// The HTTP client (custom CA, proxy). It should not follow redirects.
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.endpoint.http = Some(client);
            self
        }
    };
}
pub(super) use token_endpoint_setters;
