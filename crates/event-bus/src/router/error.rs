//! [`RouterError`]: why a router could not start or stopped with an error.

use crate::error::BusError;

/// Why a router could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// No handler was registered, so there is nothing to subscribe to.
    #[error("the router has no handlers")]
    NoHandlers,
    /// Subscribing failed.
    #[error("could not subscribe: {0}")]
    Subscribe(#[source] BusError),
    /// The subscription failed for good while running.
    #[error("the subscription failed: {0}")]
    Subscription(#[source] BusError),
    /// The router task panicked or was cancelled.
    #[error("the router task ended abnormally: {0}")]
    Task(String),
}
