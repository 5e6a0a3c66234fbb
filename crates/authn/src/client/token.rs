//! [`AccessToken`] and the [`TokenProvider`] trait every outgoing-token source implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::error::ClientError;
use crate::error::Redacted;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An access token to send downstream: a bearer token, or one bound to a
/// DPoP key (feature `dpop`), sent with a proof by that key. Cheap to clone;
/// `Debug` redacts it. Tokens compare by their text.
#[derive(Clone)]
pub struct AccessToken {
    token: Arc<str>,
    #[cfg(feature = "dpop")]
    dpop: Option<super::DpopSigner>,
}

impl AccessToken {
    /// Wraps a bearer token.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self {
            token: token.into(),
            #[cfg(feature = "dpop")]
            dpop: None,
        }
    }

    /// Wraps a token bound to `signer`'s key (`token_type: DPoP`, RFC 9449):
    /// it goes out as `Authorization: DPoP` with a proof by that key.
    #[cfg(feature = "dpop")]
    pub fn dpop_bound(token: impl Into<Arc<str>>, signer: super::DpopSigner) -> Self {
        Self {
            token: token.into(),
            dpop: Some(signer),
        }
    }

    /// The token itself. Never log it.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// The key this token is bound to, when it is DPoP-bound.
    #[cfg(feature = "dpop")]
    #[must_use]
    pub fn dpop_signer(&self) -> Option<&super::DpopSigner> {
        self.dpop.as_ref()
    }

    /// The `Authorization` scheme it is sent with: `Bearer` or `DPoP`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        #[cfg(feature = "dpop")]
        if self.dpop.is_some() {
            return "DPoP";
        }
        "Bearer"
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}

impl Eq for AccessToken {}

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
