//! [`AuthorizedClient`]: a `reqwest::Client` that sends tokens (bearer or DPoP-bound).

use super::authorization::{Refusal, authorize, refusal};
use super::inject::InjectTokenError;
use super::token::TokenProvider;
use std::fmt;

/// A `reqwest::Client` paired with a [`TokenProvider`]: every request gets
/// `Authorization: Bearer` (or `DPoP` and a proof, for a DPoP-bound token),
/// and a 401 `error="invalid_token"` answer invalidates the token and is
/// retried once with a fresh one when the body can be replayed (not a
/// stream); a 401 `error="use_dpop_nonce"`, once with the nonce.
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

    /// Builds and sends a request with a token (see [`execute`](Self::execute)).
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, InjectTokenError<reqwest::Error>> {
        let request = request.build().map_err(InjectTokenError::Inner)?;
        self.execute(request).await
    }

    /// Sends a request with a token: `Authorization: Bearer`, or `DPoP`
    /// with a fresh proof for a DPoP-bound token. A 401 `invalid_token`
    /// answer drops the token and sends once more with a fresh one; a 401
    /// `use_dpop_nonce` sends once more with a proof echoing the nonce
    /// (both only when the body can be replayed).
    pub async fn execute(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, InjectTokenError<reqwest::Error>> {
        crate::client_span::propagate(request.headers_mut());
        let mut token = self
            .provider
            .token()
            .await
            .map_err(InjectTokenError::Token)?;
        let mut replay = request.try_clone();
        authorize_request(&mut request, &token)?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(InjectTokenError::Inner)?;
        // At most one retry for each reason: a fresh token, a nonce.
        let (mut fresh_token, mut nonce) = (false, false);
        loop {
            let url = response.url().as_str().to_owned();
            let retry = match refusal(&token, &url, response.status(), response.headers()) {
                Some(Refusal::InvalidToken) if !fresh_token => {
                    fresh_token = true;
                    self.provider.invalidate(&token);
                    token = self
                        .provider
                        .token()
                        .await
                        .map_err(InjectTokenError::Token)?;
                    true
                }
                Some(Refusal::UseDpopNonce) if !nonce => {
                    nonce = true;
                    true
                }
                _ => false,
            };
            let Some(mut again) = replay.take().filter(|_| retry) else {
                return Ok(response);
            };
            replay = again.try_clone();
            authorize_request(&mut again, &token)?;
            response = self
                .client
                .execute(again)
                .await
                .map_err(InjectTokenError::Inner)?;
        }
    }
}

fn authorize_request(
    request: &mut reqwest::Request,
    token: &super::AccessToken,
) -> Result<(), InjectTokenError<reqwest::Error>> {
    let method = request.method().as_str().to_owned();
    let url = request.url().as_str().to_owned();
    authorize(request.headers_mut(), &method, &url, token).map_err(InjectTokenError::Token)
}
