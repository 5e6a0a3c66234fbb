//! [`TokenExchange`]: RFC 8693 token exchange, cached per subject token.

use super::credentials::Signer;
use super::error::ClientError;
use super::slot::{Fetched, Slot};
use super::token::{AccessToken, BoxFuture, TokenProvider};
use super::token_endpoint::{TokenEndpoint, TokenEndpointConfig, token_endpoint_setters};
use crate::endpoint::post_form;
use crate::principal::Principal;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The cache key: everything the exchanged token depends on. The subject
/// token is kept as a SHA-256 digest, never in clear.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    subject: [u8; 32],
    audience: Box<str>,
    scope: Box<str>,
}

struct Shared {
    endpoint: TokenEndpoint,
    slots: moka::sync::Cache<Key, Arc<Slot>>,
    /// The key exchanged tokens are bound to (DPoP), if any.
    signer: Option<Signer>,
}

/// Trades a caller's token for one scoped to a downstream audience
/// (RFC 8693), authenticating as this service's client.
///
/// Results are cached per (subject token hash, audience, scopes), renewed
/// ahead of expiry like [`ClientCredentials`](super::ClientCredentials),
/// with one request in flight per key.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tessera_authn::client::{TokenExchange, TokenProvider};
/// use tessera_authn::test_util::{TestClient, TestIssuer};
///
/// let idp = TestIssuer::start().await?;
/// idp.add_client(TestClient::new("gateway", "s3cret").audiences(["comments"]));
/// let user_token = idp.token().subject("alice").claim("scope", "read").sign_introspectable();
///
/// let exchange = TokenExchange::builder("gateway", "s3cret").discovery(idp.issuer()).build()?;
/// let downstream = exchange.exchange(&user_token, "comments", &[]).await?;
/// assert_ne!(downstream.secret(), user_token);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenExchange {
    shared: Arc<Shared>,
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("auth", &self.shared.endpoint.auth)
            .field("endpoint", &self.shared.endpoint.source)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenExchange`].
#[must_use]
pub struct TokenExchangeBuilder {
    endpoint: TokenEndpointConfig,
    capacity: u64,
    signer: Option<Signer>,
}

impl fmt::Debug for TokenExchangeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeBuilder")
            .field("auth", &self.endpoint.auth)
            .finish_non_exhaustive()
    }
}

impl TokenExchangeBuilder {
    token_endpoint_setters!();

    /// Most exchanged tokens cached (default 10 000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Asks for exchanged tokens bound to this DPoP key (RFC 9449): every
    /// exchange request carries a proof by it (with one `use_dpop_nonce`
    /// retry if the server demands a nonce), and an answer that is not a
    /// `DPoP` token is refused rather than used unbound. The tokens are
    /// sent with `Authorization: DPoP` and a proof per request by
    /// [`AuthorizedClient`](super::AuthorizedClient) and
    /// [`InjectTokenLayer`](super::InjectTokenLayer).
    #[cfg(feature = "dpop")]
    pub fn dpop(mut self, signer: super::DpopSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Checks the configuration. Performs no I/O.
    pub fn build(self) -> Result<TokenExchange, ClientError> {
        Ok(TokenExchange {
            shared: Arc::new(Shared {
                endpoint: self.endpoint.check()?,
                // Idle entries go: a user's exchanged tokens are not kept
                // after the user stops calling.
                slots: moka::sync::Cache::builder()
                    .max_capacity(self.capacity.max(1))
                    .time_to_idle(Duration::from_secs(15 * 60))
                    .build(),
                signer: self.signer,
            }),
        })
    }
}

#[derive(serde::Deserialize)]
struct ExchangeResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    issued_token_type: Option<String>,
}

impl TokenExchange {
    /// Starts building an exchange client authenticating as this client.
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> TokenExchangeBuilder {
        TokenExchangeBuilder {
            endpoint: TokenEndpointConfig::new(client_id.into(), client_secret.into()),
            capacity: 10_000,
            signer: None,
        }
    }

    /// A token for `audience` (and `scopes`, empty for the server's choice)
    /// on behalf of the subject of `subject_token`.
    pub async fn exchange(
        &self,
        subject_token: &str,
        audience: &str,
        scopes: &[&str],
    ) -> Result<AccessToken, ClientError> {
        let mut sorted: Vec<&str> = scopes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let scope = sorted.join(" ");
        let key = Key {
            subject: Sha256::digest(subject_token.as_bytes()).into(),
            audience: audience.into(),
            scope: scope.as_str().into(),
        };
        let slot = self
            .shared
            .slots
            .get_with_by_ref(&key, || Arc::new(Slot::new()));
        slot.get(self.shared.endpoint.refresh, || async {
            self.shared
                .endpoint
                .retry
                .run(|| self.fetch(subject_token, audience, &scope))
                .await
        })
        .await
    }

    /// Forgets a cached exchanged token.
    pub fn invalidate(&self, token: &AccessToken) {
        for (_, slot) in &self.shared.slots {
            slot.invalidate(token);
        }
    }

    /// A [`TokenProvider`] exchanging the principal's token for `audience`.
    pub fn for_principal<E>(&self, principal: &Principal<E>, audience: &str) -> ExchangedToken {
        ExchangedToken {
            exchange: self.clone(),
            subject: AccessToken::new(principal.bearer_token()),
            subject_exp: Some(principal.claims().exp),
            audience: audience.into(),
            scopes: Vec::new(),
        }
    }

    async fn fetch(
        &self,
        subject_token: &str,
        audience: &str,
        scope: &str,
    ) -> Result<Fetched, ClientError> {
        match self.request(subject_token, audience, scope).await {
            // RFC 9449 §8: the server wants its nonce in the proof; the
            // answer carried it, and the next proof echoes it.
            Err(ClientError::OAuth { code, .. })
                if code == "use_dpop_nonce" && self.shared.signer.is_some() =>
            {
                self.request(subject_token, audience, scope).await
            }
            result => result,
        }
    }

    async fn request(
        &self,
        subject_token: &str,
        audience: &str,
        scope: &str,
    ) -> Result<Fetched, ClientError> {
        let endpoint = &self.shared.endpoint;
        let url = endpoint.url().await?;
        let mut params = vec![
            ("grant_type", GRANT.to_owned()),
            ("subject_token", subject_token.to_owned()),
            ("subject_token_type", ACCESS_TOKEN.to_owned()),
            ("requested_token_type", ACCESS_TOKEN.to_owned()),
            ("audience", audience.to_owned()),
        ];
        if !scope.is_empty() {
            params.push(("scope", scope.to_owned()));
        }
        let signer = self.shared.signer.as_ref();
        let body = post_form(
            &endpoint.http,
            &url,
            &endpoint.auth,
            params,
            endpoint.timeout,
            signer.map(proof),
        )
        .await
        .map_err(ClientError::from_post)?;
        exchange_response(&body, signer)
    }
}

/// The key's proof for a token request (none exists without the `dpop` feature).
#[cfg(feature = "dpop")]
fn proof(signer: &Signer) -> &dyn crate::endpoint::PostProof {
    signer
}
/// The key's proof for a token request (none exists without the `dpop` feature).
#[cfg(not(feature = "dpop"))]
fn proof(signer: &Signer) -> &dyn crate::endpoint::PostProof {
    match *signer {}
}

/// The token of a successful RFC 8693 response: an access token (or JWT),
/// living `expires_in` or 60 s; a bearer token without a DPoP key, a
/// DPoP-bound one with it, anything else refused.
pub(crate) fn exchange_response(
    body: &[u8],
    signer: Option<&Signer>,
) -> Result<Fetched, ClientError> {
    let response: ExchangeResponse = serde_json::from_slice(body)
        .map_err(|e| ClientError::InvalidResponse(format!("token exchange: {e}")))?;
    if let Some(issued) = &response.issued_token_type
        && issued != ACCESS_TOKEN
        && issued != "urn:ietf:params:oauth:token-type:jwt"
    {
        return Err(ClientError::InvalidResponse(
            "token exchange: issued token is not an access token".into(),
        ));
    }
    let token = match signer {
        #[cfg(feature = "dpop")]
        Some(signer) if response.token_type.eq_ignore_ascii_case("dpop") => {
            AccessToken::dpop_bound(response.access_token, signer.clone())
        }
        #[cfg(feature = "dpop")]
        Some(_) => {
            return Err(ClientError::InvalidResponse(
                "token exchange: token type is not DPoP: the server did not bind the token to the key"
                    .into(),
            ));
        }
        #[cfg(not(feature = "dpop"))]
        Some(never) => match *never {},
        None if response.token_type.eq_ignore_ascii_case("bearer") => {
            AccessToken::new(response.access_token)
        }
        None => {
            return Err(ClientError::InvalidResponse(
                "token exchange: token type is not bearer".into(),
            ));
        }
    };
    Ok(Fetched {
        token,
        lifetime: Duration::from_secs(response.expires_in.unwrap_or(60)),
    })
}

/// A [`TokenProvider`] that exchanges one subject token for one audience;
/// made by [`TokenExchange::for_principal`].
#[derive(Clone)]
pub struct ExchangedToken {
    exchange: TokenExchange,
    subject: AccessToken,
    subject_exp: Option<i64>,
    audience: Box<str>,
    scopes: Vec<String>,
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ExchangedToken {
    /// Requests these scopes for the downstream token.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }
}

impl TokenProvider for ExchangedToken {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>> {
        Box::pin(async move {
            if self
                .subject_exp
                .is_some_and(|exp| exp <= crate::time::now())
            {
                return Err(ClientError::SubjectExpired);
            }
            let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
            self.exchange
                .exchange(self.subject.secret(), &self.audience, &scopes)
                .await
        })
    }

    fn invalidate(&self, token: &AccessToken) {
        self.exchange.invalidate(token);
    }
}
