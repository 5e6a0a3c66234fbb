//! [`TestIssuerBuilder`]: everything a [`TestIssuer`] holds before it serves
//! its first request.

use super::issuer::{TestIssuer, TestIssuerError};
use super::key::{TestKey, alg_name};
use super::oauth::{OAuthState, TestClient, TestUser};
use super::server::{IssuerState, JwksMode, routes};
use jsonwebtoken::Algorithm;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Configures a [`TestIssuer`] and starts it. The listener serves only once
/// the signing key exists and the clients and users are registered, so a
/// caller that waits for discovery to answer (a compose health check) finds
/// the issuer ready.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tessera_authn::test_util::{TestClient, TestIssuer};
///
/// let idp = TestIssuer::builder()
///     .audience("orders")
///     .client(TestClient::new("svc", "secret").scopes(["read"]))
///     .start()
///     .await?;
/// assert_eq!(idp.audience(), "orders");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TestIssuerBuilder {
    bind: SocketAddr,
    issuer: Option<String>,
    audience: String,
    clients: Vec<TestClient>,
    users: Vec<TestUser>,
    #[cfg(feature = "dpop")]
    dpop_nonces: bool,
}

impl Default for TestIssuerBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: None,
            audience: "test-api".to_owned(),
            clients: Vec::new(),
            users: Vec::new(),
            #[cfg(feature = "dpop")]
            dpop_nonces: false,
        }
    }
}

impl TestIssuerBuilder {
    /// The listen address (default `127.0.0.1:0`, an ephemeral port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The `iss` of minted tokens and discovery (default `http://<addr>`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The audience of minted tokens (default `test-api`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Registers a client (a later one with the same id replaces it).
    pub fn client(mut self, client: TestClient) -> Self {
        self.clients.push(client);
        self
    }

    /// Registers clients.
    pub fn clients(mut self, clients: impl IntoIterator<Item = TestClient>) -> Self {
        self.clients.extend(clients);
        self
    }

    /// Registers a password-grant user (development only).
    pub fn user(mut self, user: TestUser) -> Self {
        self.users.push(user);
        self
    }

    /// Registers password-grant users.
    pub fn users(mut self, users: impl IntoIterator<Item = TestUser>) -> Self {
        self.users.extend(users);
        self
    }

    /// Demands server nonces in token requests' DPoP proofs from the first
    /// request on (see [`TestIssuer::demand_dpop_nonces`]).
    #[cfg(feature = "dpop")]
    pub fn demand_dpop_nonces(mut self, demand: bool) -> Self {
        self.dpop_nonces = demand;
        self
    }

    /// Binds the listener, generates the RS256 signing key, registers the
    /// clients and users, and only then starts serving: RSA key generation
    /// can take seconds on a loaded machine, and connections arriving
    /// meanwhile wait in the listen backlog instead of finding an empty JWKS.
    pub async fn start(self) -> Result<TestIssuer, TestIssuerError> {
        let listener = tokio::net::TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let kid = format!("{}-1", alg_name(Algorithm::RS256).to_ascii_lowercase());
        let key = TestKey::generate(kid, Algorithm::RS256)?;
        let oauth = OAuthState {
            clients: Mutex::new(
                self.clients
                    .into_iter()
                    .map(|c| (c.client_id.clone(), c))
                    .collect(),
            ),
            users: Mutex::new(
                self.users
                    .into_iter()
                    .map(|u| (u.username.clone(), u))
                    .collect::<HashMap<_, _>>(),
            ),
            #[cfg(feature = "dpop")]
            dpop: Mutex::new(
                self.dpop_nonces
                    .then(|| Arc::new(crate::dpop::DpopOptions::new().nonces())),
            ),
            ..OAuthState::default()
        };
        let state = Arc::new(IssuerState {
            issuer: self.issuer.unwrap_or_else(|| format!("http://{addr}")),
            audience: self.audience,
            keys: Mutex::new(vec![Arc::new(key)]),
            next_kid: AtomicU64::new(2),
            jwks_mode: Mutex::new(JwksMode::Normal),
            cache_control: Mutex::new(Some("public, max-age=300".to_owned())),
            discovery_issuer: Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
            discovery_fetches: AtomicU64::new(0),
            oauth,
        });
        let router = routes(&state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(TestIssuer::serving(state, addr, server))
    }
}
