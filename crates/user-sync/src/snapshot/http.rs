//! [`HttpSnapshotSource`]: reads a user service's `GET /users?after=<cursor>&limit=<n>`.
//!
//! The endpoint answers `200` with a [`SnapshotPage`] as JSON. The first
//! request has no `after`; each next one passes the previous page's `next`.
//! Any other status, a body that is not a page, or a body over the size cap
//! is a [`SnapshotError`]: the backfill stops with nothing half-applied from
//! that page. An optional token provider adds `Authorization: Bearer ...`
//! (a `tessera-authn` client-credentials provider fits).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_user_sync::{UserReplica, snapshot::{Backfill, http::HttpSnapshotSource}};
//!
//! let source = HttpSnapshotSource::new("http://user-service.internal/users".parse()?)
//!     .bearer_token(|| async { Ok("token-from-your-provider".to_owned()) });
//! let replica = UserReplica::in_memory("comments");
//! Backfill::new(source).run(&replica).await?;
//! # Ok(()) }
//! ```

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use tessera_event_bus::BoxError;
use url::Url;

use super::source::{SnapshotPage, SnapshotSource};
use crate::error::SnapshotError;

type TokenFuture = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;
type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// A [`SnapshotSource`] over HTTP. Cheap to clone.
#[derive(Clone)]
#[must_use]
pub struct HttpSnapshotSource {
    url: Url,
    client: reqwest::Client,
    token: Option<TokenProvider>,
    max_body: usize,
    timeout: Duration,
}

impl fmt::Debug for HttpSnapshotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSnapshotSource")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<provider>"))
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpSnapshotSource {
    /// A source for the endpoint at `url` (such as `http://users/users`);
    /// `after` and `limit` are added to its query.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            client: reqwest::Client::new(),
            token: None,
            max_body: 16 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }

    /// Uses this HTTP client (custom CA, proxy, ...).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// Asks `provider` for a bearer token before each request.
    pub fn bearer_token<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
    {
        self.token = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// The largest page body accepted (default 16 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The timeout of each request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn page_url(&self, after: Option<&str>, limit: u32) -> Url {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.append_pair("limit", &limit.to_string());
        }
        url
    }
}

#[async_trait]
impl SnapshotSource for HttpSnapshotSource {
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError> {
        let mut request = self
            .client
            .get(self.page_url(after, limit))
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            let token = token().await.map_err(SnapshotError::Token)?;
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| SnapshotError::Transport(Box::new(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SnapshotError::Status {
                status: status.as_u16(),
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(SnapshotError::Malformed(format!(
                "body larger than {} bytes",
                self.max_body
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SnapshotError::Transport(Box::new(e)))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(SnapshotError::Malformed(format!(
                    "body larger than {} bytes",
                    self.max_body
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| SnapshotError::Malformed(e.to_string()))
    }
}
