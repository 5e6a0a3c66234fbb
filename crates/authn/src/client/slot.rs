//! [`Slot`]: one cached token and the single flight that renews it, shared
//! by the client credentials and token exchange caches.

use super::error::ClientError;
use super::policy::RefreshAhead;
use super::token::AccessToken;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// One cached token and the single flight that renews it.
pub(crate) struct Slot {
    current: RwLock<Option<Arc<Cached>>>,
    gate: tokio::sync::Mutex<()>,
    /// Bumped by every completed fetch, successful or not.
    generation: AtomicU64,
    last_error: Mutex<Option<ClientError>>,
}

pub(crate) struct Cached {
    pub(crate) token: AccessToken,
    pub(crate) refresh_at: Instant,
    pub(crate) expires_at: Instant,
}

/// The longest lifetime a cached token is given, whatever `expires_in` the
/// token endpoint announced: a year. An absurd `expires_in` (up to
/// `u64::MAX` seconds) would otherwise overflow `Instant` arithmetic.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

impl Cached {
    /// The cache entry for a token fetched at `started`, its lifetime capped
    /// at [`MAX_TOKEN_LIFETIME`].
    pub(crate) fn new(fetched: &Fetched, started: Instant, policy: RefreshAhead) -> Self {
        let lifetime = fetched.lifetime.min(MAX_TOKEN_LIFETIME);
        Self {
            token: fetched.token.clone(),
            refresh_at: started + policy.refresh_after(lifetime),
            expires_at: started + lifetime,
        }
    }
}

/// A fresh token and its lifetime.
pub(crate) struct Fetched {
    pub(crate) token: AccessToken,
    pub(crate) lifetime: Duration,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(None),
            gate: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Arc<Cached>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cached token, or one fetched by `fetch`, with at most one fetch
    /// in flight. Callers waiting for a fetch that fails get its error.
    pub(crate) async fn get<F, Fut>(
        &self,
        policy: RefreshAhead,
        fetch: F,
    ) -> Result<AccessToken, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, ClientError>>,
    {
        let now = Instant::now();
        if let Some(cached) = self.cached() {
            if now < cached.refresh_at {
                return Ok(cached.token.clone());
            }
            if now < cached.expires_at {
                // Refresh window: one caller renews, the others go on with
                // the still valid token.
                let Ok(_flight) = self.gate.try_lock() else {
                    return Ok(cached.token.clone());
                };
                if let Some(newer) = self.cached().filter(|c| Instant::now() < c.refresh_at) {
                    return Ok(newer.token.clone());
                }
                return match self.fetch_and_store(policy, fetch).await {
                    Ok(token) => Ok(token),
                    Err(error) => {
                        tracing::warn!(
                            target: "tessera_authn::client",
                            %error,
                            "token renewal failed; using the cached token until it expires"
                        );
                        Ok(cached.token.clone())
                    }
                };
            }
        }
        let seen = self.generation.load(Ordering::Acquire);
        let _flight = self.gate.lock().await;
        if let Some(cached) = self.cached().filter(|c| Instant::now() < c.expires_at) {
            return Ok(cached.token.clone());
        }
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(error) = self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        {
            // The fetch we waited for failed: share its outcome rather than
            // sending one more request per waiter.
            return Err(error);
        }
        self.fetch_and_store(policy, fetch).await
    }

    /// Call with `gate` held.
    async fn fetch_and_store<F, Fut>(
        &self,
        policy: RefreshAhead,
        fetch: F,
    ) -> Result<AccessToken, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, ClientError>>,
    {
        let started = Instant::now();
        let result = fetch().await;
        let mut last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let outcome = match result {
            Ok(fetched) => {
                // Lifetimes count from the request, not the response: a
                // slow answer must not stretch them.
                let cached = Arc::new(Cached::new(&fetched, started, policy));
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
                *last_error = None;
                Ok(fetched.token)
            }
            Err(error) => {
                *last_error = Some(error.clone());
                Err(error)
            }
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// Forgets the cached token if it is `token`.
    pub(crate) fn invalidate(&self, token: &AccessToken) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| &c.token == token) {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Found by fuzzing (fuzz target `token_response`): `expires_in` near
    // u64::MAX panicked with an `Instant` overflow.
    #[tokio::test]
    async fn a_huge_expires_in_is_capped_at_a_year() {
        let slot = Slot::new();
        let before = Instant::now();
        let token = slot
            .get(RefreshAhead::default(), || async {
                Ok(Fetched {
                    token: AccessToken::new("t"),
                    lifetime: Duration::from_secs(u64::MAX),
                })
            })
            .await
            .unwrap();
        assert_eq!(token.secret(), "t");
        let cached = slot.cached().unwrap();
        assert!(cached.expires_at <= Instant::now() + MAX_TOKEN_LIFETIME);
        assert!(cached.expires_at >= before + MAX_TOKEN_LIFETIME);
        assert!(cached.refresh_at < cached.expires_at);
        // The cached token is served without another fetch.
        let again = slot
            .get(RefreshAhead::default(), || async {
                Err(ClientError::InvalidResponse("no second fetch".into()))
            })
            .await
            .unwrap();
        assert_eq!(again.secret(), "t");
    }

    #[test]
    fn every_lifetime_gives_an_entry_that_renews_before_it_expires() {
        let now = Instant::now();
        for secs in [0, 1, 59, 3600, 365 * 24 * 3600, u64::MAX / 2, u64::MAX] {
            let fetched = Fetched {
                token: AccessToken::new("t"),
                lifetime: Duration::from_secs(secs),
            };
            for policy in [
                RefreshAhead::default(),
                RefreshAhead::new(1.0, Duration::ZERO),
            ] {
                let cached = Cached::new(&fetched, now, policy);
                assert!(cached.refresh_at <= cached.expires_at);
                assert!(cached.expires_at <= now + MAX_TOKEN_LIFETIME);
            }
        }
    }
}
