//! [`ProducerError`]: why a change to a user was not made.

use tessera_event_bus::{BoxError, BusError};

use crate::error::InvalidEvent;

/// A change to a user could not be made; nothing was written nor emitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The user does not exist.
    #[error("user `{0}` does not exist")]
    NotFound(String),
    /// The user was deleted; deleted users do not change any more.
    #[error("user `{0}` is deleted")]
    Deleted(String),
    /// The user id or the resulting event is invalid.
    #[error("invalid user change: {0}")]
    Invalid(#[from] InvalidEvent),
    /// Publishing the event failed (in-memory directory); the change was undone.
    #[error("could not publish the user event: {0}")]
    Publish(#[from] BusError),
    /// The database or the outbox failed; the transaction was not committed.
    #[error("user directory database error: {0}")]
    Database(#[source] BoxError),
}
