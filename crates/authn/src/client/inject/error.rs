//! [`InjectTokenError`]: why an outgoing request failed.

use crate::client::error::ClientError;

/// Why an outgoing request failed: no token, or the inner service's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InjectTokenError<E> {
    /// No token could be obtained; the request was not sent.
    #[error("no token for the outgoing request: {0}")]
    Token(#[source] ClientError),
    /// The inner service failed.
    #[error(transparent)]
    Inner(E),
}
