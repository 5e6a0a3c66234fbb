//! [`AuthorizedClient`]: a `reqwest::Client` that sends bearer tokens.

use super::bearer::{bearer_value, is_invalid_token};
use super::error::ClientError;
use super::inject::InjectTokenError;
use super::token::TokenProvider;
use std::fmt;

/// A `reqwest::Client` paired with a [`TokenProvider`]: every request gets
/// `Authorization: Bearer`, and a 401 `error="invalid_token"` answer
/// invalidates the token and is retried once with a fresh one when the body
/// can be replayed (not a stream).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use tessera_authn::client::{AuthorizedClient, ClientCredentials};
///
/// let credentials = ClientCredentials::builder("orders", "s3cret")
///     .discovery("https://idp.example/realms/main")
///     .audience("billing")
///     .build()?;
/// let billing = AuthorizedClient::new(reqwest::Client::new(), credentials);
/// let response = billing.send(billing.get("https://billing.internal/invoices")).await?;
/// # let _ = response;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizedClient<P> {
    client: reqwest::Client,
    provider: P,
}

impl<P> fmt::Debug for AuthorizedClient<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedClient")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl<P: TokenProvider> AuthorizedClient<P> {
    /// Sends `client`'s requests with tokens from `provider`.
    pub fn new(client: reqwest::Client, provider: P) -> Self {
        Self { client, provider }
    }

    /// The underlying client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The token provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// Starts a GET request (send it with [`send`](Self::send)).
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// Starts a POST request (send it with [`send`](Self::send)).
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Starts a request (send it with [`send`](Self::send)).
    pub fn request(
        &self,
        method: reqwest::Method,
        url: impl reqwest::IntoUrl,
    ) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Builds and sends a request with a bearer token.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, InjectTokenError<reqwest::Error>> {
        let request = request.build().map_err(InjectTokenError::Inner)?;
        self.execute(request).await
    }

    /// Sends a request with a bearer token.
    pub async fn execute(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, InjectTokenError<reqwest::Error>> {
        crate::client_span::propagate(request.headers_mut());
        let token = self
            .provider
            .token()
            .await
            .map_err(InjectTokenError::Token)?;
        let replay = request.try_clone();
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, bearer(&token)?);
        let response = self
            .client
            .execute(request)
            .await
            .map_err(InjectTokenError::Inner)?;
        let Some(mut retry) = replay else {
            return Ok(response);
        };
        if !is_invalid_token(response.status(), response.headers()) {
            return Ok(response);
        }
        self.provider.invalidate(&token);
        let fresh = self
            .provider
            .token()
            .await
            .map_err(InjectTokenError::Token)?;
        retry
            .headers_mut()
            .insert(http::header::AUTHORIZATION, bearer(&fresh)?);
        self.client
            .execute(retry)
            .await
            .map_err(InjectTokenError::Inner)
    }
}

fn bearer(
    token: &super::AccessToken,
) -> Result<http::HeaderValue, InjectTokenError<reqwest::Error>> {
    bearer_value(token).map_err(|e: ClientError| InjectTokenError::Token(e))
}
