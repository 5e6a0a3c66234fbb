//! [`OutboxError`]: what went wrong writing to or relaying from the outbox.

use super::table::TableNameError;
use crate::error::{AttributeError, CodecError, WireError};

/// What went wrong writing to or relaying from the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The database refused or could not be reached.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The event's attributes break CloudEvents; nothing was written.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] AttributeError),
    /// The event's data could not be encoded; nothing was written.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The attributes could not be written as JSON; nothing was written.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A schema or table name is invalid.
    #[error(transparent)]
    TableName(#[from] TableNameError),
    /// A relay setting is invalid.
    #[error("invalid outbox relay configuration: {0}")]
    InvalidConfig(String),
    /// The relay task panicked or was cancelled.
    #[error("the outbox relay task ended abnormally: {0}")]
    Task(String),
}
