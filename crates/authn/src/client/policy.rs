//! When cached tokens are renewed ([`RefreshAhead`]) and how failed token
//! requests are retried ([`RetryPolicy`]), for every token-endpoint client.

use super::error::ClientError;
use backon::{ExponentialBuilder, Retryable as _};
use std::future::Future;
use std::time::Duration;

/// When a cached token is renewed: once `fraction` of its lifetime has
/// passed or `margin` before it expires, whichever comes first.
///
/// The default is 80 % of the lifetime or 30 s before expiry. During the
/// refresh window one caller renews the token while the others keep using
/// the cached one; a failed renewal is retried by the next caller and the
/// old token is served until it expires.
///
/// ```
/// use std::time::Duration;
/// use tessera_authn::client::RefreshAhead;
///
/// let policy = RefreshAhead::default();
/// // A one-hour token is renewed at 80 %, 48 min in (30 s before expiry is later).
/// assert_eq!(policy.refresh_after(Duration::from_secs(3600)), Duration::from_secs(2880));
/// // A 100 s token 30 s before expiry, 70 s in (80 % would be 80 s).
/// assert_eq!(policy.refresh_after(Duration::from_secs(100)), Duration::from_secs(70));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct RefreshAhead {
    fraction: f64,
    margin: Duration,
}

impl Default for RefreshAhead {
    fn default() -> Self {
        Self {
            fraction: 0.8,
            margin: Duration::from_secs(30),
        }
    }
}

impl RefreshAhead {
    /// Renew once `fraction` (clamped to 0..=1) of the lifetime has passed
    /// or `margin` before expiry, whichever is earlier.
    pub fn new(fraction: f64, margin: Duration) -> Self {
        let fraction = if fraction.is_nan() {
            0.8
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Self { fraction, margin }
    }

    /// How long after issuance a token of this lifetime is renewed.
    #[must_use]
    pub fn refresh_after(&self, lifetime: Duration) -> Duration {
        lifetime
            .mul_f64(self.fraction)
            .min(lifetime.saturating_sub(self.margin))
    }
}

/// How transient failures (network errors, 5xx, 429,
/// `temporarily_unavailable`) are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RetryPolicy {
    retries: usize,
    min_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Up to `retries` retries, the first after `min_delay`, doubling up to `max_delay`.
    pub fn new(retries: usize, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            retries,
            min_delay,
            max_delay: max_delay.max(min_delay),
        }
    }

    /// No retries.
    pub fn none() -> Self {
        Self::new(0, Duration::ZERO, Duration::ZERO)
    }

    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        f.retry(
            ExponentialBuilder::default()
                .with_min_delay(self.min_delay)
                .with_max_delay(self.max_delay)
                .with_max_times(self.retries)
                .with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(ClientError::is_transient)
        .notify(|error, delay| {
            tracing::debug!(
                target: "tessera_authn::client",
                %error,
                retry_in_ms = delay.as_millis(),
                "token request failed; retrying"
            );
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ahead_takes_the_earlier_of_fraction_and_margin() {
        let p = RefreshAhead::default();
        assert_eq!(
            p.refresh_after(Duration::from_secs(100)),
            Duration::from_secs(70)
        );
        assert_eq!(p.refresh_after(Duration::from_secs(10)), Duration::ZERO);
        let p = RefreshAhead::new(0.5, Duration::ZERO);
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        let p = RefreshAhead::new(f64::NAN, Duration::ZERO);
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(8)
        );
        let p = RefreshAhead::new(7.0, Duration::ZERO);
        assert_eq!(
            p.refresh_after(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }
}
