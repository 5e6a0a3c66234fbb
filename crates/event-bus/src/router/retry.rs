//! Retry with exponential backoff and jitter, as a tower layer.
//!
//! [`RetryPolicy`] is a [`tower::retry::Policy`]: transient errors and
//! timeouts are retried after a backoff computed by `backon` (exponential,
//! with jitter); permanent errors are not. When the attempts run out, the
//! last error is returned wrapped in [`HandlerError::RetriesExhausted`], so
//! the dead letter says how often the handler ran.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{sync::{Arc, atomic::{AtomicU32, Ordering}}, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tessera_event_bus::{Attributes, EventContext, HandlerError, RawEvent};
//! use tessera_event_bus::router::{DeliveryRequest, RetryPolicy};
//!
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&calls);
//! let svc = ServiceBuilder::new()
//!     .layer(RetryPolicy::exponential().max_attempts(3).min_delay(Duration::from_millis(1)).into_layer())
//!     .service(service_fn(move |_req: DeliveryRequest| {
//!         counter.fetch_add(1, Ordering::SeqCst);
//!         async { Err::<(), _>(HandlerError::transient("database unavailable")) }
//!     }));
//! let raw = Arc::new(RawEvent::new(Attributes::new("1", "/s", "t"), bytes::Bytes::new()));
//! let err = svc.oneshot(DeliveryRequest::new(raw, EventContext::detached("g"))).await.unwrap_err();
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert!(matches!(err, HandlerError::RetriesExhausted { attempts: 3, .. }));
//! # });
//! ```

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tower::retry::{Policy, RetryLayer};

use super::handler::{DeliveryRequest, HandlerError};
use crate::metrics;

/// How often and how patiently a handler is retried after transient errors.
#[derive(Debug, Clone)]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    min_delay: Duration,
    max_delay: Duration,
    factor: f32,
    jitter: bool,
    /// Retries done for the request this copy of the policy serves.
    retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::exponential()
    }
}

impl RetryPolicy {
    /// 5 attempts, delays from 100 ms doubling up to 10 s, with jitter.
    pub fn exponential() -> Self {
        Self {
            max_attempts: 5,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: true,
            retries: 0,
        }
    }

    /// No retries: the first transient error dead-letters the event.
    pub fn none() -> Self {
        Self::exponential().max_attempts(1)
    }

    /// How many times the handler runs at most, the first call included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay before the first retry.
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The longest delay between two attempts (before jitter).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The growth factor of the delay (at least 1).
    pub fn factor(mut self, factor: f32) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    /// Retries at exactly the computed delays, without random jitter.
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The configured maximum number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before retry number `retry` (0-based), jitter included.
    pub fn delay(&self, retry: u32) -> Duration {
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .without_max_times();
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder
            .build()
            .nth(retry as usize)
            .unwrap_or(self.max_delay)
    }

    /// A tower layer applying this policy.
    pub fn into_layer(self) -> RetryLayer<Self> {
        RetryLayer::new(self)
    }
}

impl Policy<DeliveryRequest, (), HandlerError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut DeliveryRequest,
        result: &mut Result<(), HandlerError>,
    ) -> Option<Self::Future> {
        let Err(error) = result else {
            return None;
        };
        if !error.is_transient() {
            return None;
        }
        let attempts = self.retries + 1;
        if attempts >= self.max_attempts {
            let last = std::mem::replace(error, HandlerError::transient("placeholder"));
            *error = HandlerError::RetriesExhausted {
                attempts,
                last: Box::new(last),
            };
            return None;
        }
        let delay = self.delay(self.retries);
        self.retries += 1;
        metrics::retried(req.event.event_type(), req.context.group());
        tracing::debug!(%error, attempt = attempts, ?delay, "retrying handler");
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &DeliveryRequest) -> Option<DeliveryRequest> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_maximum_without_jitter() {
        let p = RetryPolicy::exponential()
            .min_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(500))
            .without_jitter();
        let delays: Vec<_> = (0..5).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_one_extra_delay() {
        let p = RetryPolicy::exponential().min_delay(Duration::from_millis(100));
        for _ in 0..50 {
            let d = p.delay(0);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }

    #[test]
    fn at_least_one_attempt() {
        assert_eq!(RetryPolicy::exponential().max_attempts(0).attempts(), 1);
        assert_eq!(RetryPolicy::none().attempts(), 1);
    }
}
