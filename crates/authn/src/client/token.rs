//! [`AccessToken`] and the [`TokenProvider`] trait every outgoing-token source implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::error::ClientError;
use crate::error::Redacted;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An access token to send downstream. Cheap to clone; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }

    /// The token itself. Never log it.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccessToken").field(&Redacted).finish()
    }
}

/// A source of bearer tokens for outgoing requests.
///
/// `token` returns a token to send now (cached providers answer from their
/// cache); `invalidate` tells the provider the downstream refused that token
/// (401 `invalid_token`), so the next `token` call must not return it.
pub trait TokenProvider: Send + Sync {
    /// A token for the next request.
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>>;

    /// Drops `token` from the provider's cache, if it is still there.
    fn invalidate(&self, token: &AccessToken) {
        let _ = token;
    }
}

impl<P: TokenProvider + ?Sized> TokenProvider for Arc<P> {
    fn token(&self) -> BoxFuture<'_, Result<AccessToken, ClientError>> {
        (**self).token()
    }

    fn invalidate(&self, token: &AccessToken) {
        (**self).invalidate(token);
    }
}
