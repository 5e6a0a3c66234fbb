//! Error types.
//!
//! Every error is a `#[non_exhaustive]` enum with lowercase messages:
//! [`InvalidEvent`] for events the replica refuses, [`StoreError`] for what a
//! replica store reports, [`ApplyError`] for applying an event,
//! [`SnapshotError`] for a snapshot source and [`BackfillError`] for a
//! backfill or reconciliation run.
//!
//! ```
//! use tessera_user_sync::{UserReplica, events::UserDeleted, error::{ApplyError, InvalidEvent}};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let replica = UserReplica::in_memory("comments");
//! let err = replica.apply(UserDeleted::new("", 1)).await.unwrap_err();
//! assert!(matches!(err, ApplyError::Invalid(InvalidEvent::EmptyUserId)));
//! assert_eq!(err.to_string(), "invalid user event: the user id is empty");
//! # });
//! ```

use tessera_event_bus::BoxError;

/// A user event the replica refuses to apply. Retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// `user_id` is empty or blank.
    #[error("the user id is empty")]
    EmptyUserId,
    /// `version` is 0 or above 2^53 − 1.
    #[error("version {0} is out of range (1 to 2^53 - 1)")]
    VersionOutOfRange(u64),
    /// The CloudEvents `subject` names another user than the data's `user_id`.
    #[error("the event subject `{subject}` does not match the user id `{user_id}`")]
    SubjectMismatch {
        /// The envelope's subject.
        subject: String,
        /// The data's user id.
        user_id: String,
    },
}

/// A replica store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (connection, query, constraint).
    #[error("replica store database error: {0}")]
    Database(#[source] BoxError),
    /// A configuration value is unusable (for example an invalid schema name).
    #[error("invalid replica store configuration: {0}")]
    Config(String),
    /// A stored row could not be read back (for example a negative version).
    #[error("corrupt replica row for user `{user_id}`: {reason}")]
    Corrupt {
        /// The user whose row is bad.
        user_id: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(Box::new(e))
    }
}

/// Applying an event (or a batch) to a replica failed; nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The event is invalid; it will never apply (dead-letter it).
    #[error("invalid user event: {0}")]
    Invalid(#[from] InvalidEvent),
    /// The store failed; retrying may help.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An `on_updated` or `on_deleted` hook failed; the change was not written.
    #[error("replica hook failed for user `{user_id}`: {source}")]
    Hook {
        /// The user the hook ran for.
        user_id: String,
        /// The hook's error.
        #[source]
        source: BoxError,
    },
}

impl ApplyError {
    /// Whether retrying may help: store and hook failures are transient,
    /// invalid events are not.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Invalid(_))
    }
}

/// A snapshot source failed to deliver a page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The request could not be sent or the response not read (connection, timeout).
    #[error("snapshot request failed: {0}")]
    Transport(#[source] BoxError),
    /// The endpoint answered with an error status.
    #[error("snapshot endpoint answered http {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The response is not a valid snapshot page.
    #[error("malformed snapshot page: {0}")]
    Malformed(String),
    /// The bearer token provider failed.
    #[error("could not get a token for the snapshot endpoint: {0}")]
    Token(#[source] BoxError),
    /// The source returned a cursor it had already returned (the one it was
    /// given, or an earlier one: a cycle): paging would never end.
    #[error("snapshot cursor `{0}` did not advance")]
    CursorStuck(String),
}

/// A backfill or reconciliation run stopped; what was applied before stays applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackfillError {
    /// Fetching a page failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Applying a page failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The store failed while listing users for reconciliation.
    #[error(transparent)]
    Store(#[from] StoreError),
}
