//! [`SoakError`] and [`UsageError`].

use tessera_event_bus::{BusError, outbox::OutboxError, router::RouterError};

/// A command line the soak cannot run with (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Why a soak run could not run (as opposed to a run that lost events,
/// which is a [`Summary`](crate::Summary) that did not pass).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoakError {
    /// PostgreSQL is out of reach, or a statement failed.
    #[error("{what}: {source}")]
    Database {
        /// What was being done, and where.
        what: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The broker is out of reach, or its topology could not be set up.
    #[error("{what}: {source}")]
    Broker {
        /// What was being done, and where.
        what: String,
        /// The bus error.
        source: BusError,
    },
    /// The outbox or the inbox could not be set up, or a relay failed to start.
    #[error("{what}: {source}")]
    Outbox {
        /// What was being done.
        what: String,
        /// The outbox error.
        source: OutboxError,
    },
    /// A consumer could not start.
    #[error("{what}: {source}")]
    Router {
        /// What was being done.
        what: String,
        /// The router error.
        source: RouterError,
    },
}

impl SoakError {
    pub(crate) fn db(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let what = what.into();
        move |source| Self::Database { what, source }
    }
}
