//! [`RouteOptions`]: per-handler settings that override the router's defaults.

use std::time::Duration;

use super::retry::RetryPolicy;

/// Per-handler settings that override the router's defaults.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RouteOptions {
    pub(super) retry: Option<RetryPolicy>,
    pub(super) timeout: Option<Duration>,
    pub(super) concurrency: Option<usize>,
}

impl RouteOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// The retry policy of this handler.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The timeout of each attempt of this handler.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// How many deliveries this handler processes at once (within the router's limit).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit.max(1));
        self
    }
}
