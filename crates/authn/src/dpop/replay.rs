//! `jti` replay protection: a proof is accepted once. [`ReplayStore`] is
//! the contract (a shared store lets several replicas refuse each other's
//! replays); [`InMemoryReplayStore`] is the bounded default.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default bound on remembered proofs of [`InMemoryReplayStore`].
pub const DEFAULT_REPLAY_ENTRIES: u64 = 1_000_000;

/// The answer of a [`ReplayStore`].
pub type ReplayFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FirstUse, ReplayStoreError>> + Send + 'a>>;

/// Whether a proof was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// First time: the key is now remembered.
    Yes,
    /// Seen before: a replay.
    No,
}

/// The store could not answer; the request is refused with 503 (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay store: {0}")]
pub struct ReplayStoreError(pub String);

/// Remembers the proofs accepted within the acceptance window.
///
/// Contract: [`first_use`](Self::first_use) is an atomic insert-if-absent.
/// It answers [`FirstUse::Yes`] exactly once per key as long as the key is
/// remembered, and it remembers a key at least until `until` (Unix
/// seconds). When it cannot promise that (full, unreachable) it answers an
/// error, never `Yes`. Keys are SHA-256 hashes of the proof key's
/// thumbprint and the `jti`, so they have a fixed size whatever a client sends.
pub trait ReplayStore: fmt::Debug + Send + Sync + 'static {
    /// Records `key` until `until`; whether it was new.
    fn first_use(&self, key: [u8; 32], until: i64) -> ReplayFuture<'_>;
}

/// The in-memory [`ReplayStore`]: bounded, each entry expiring when its
/// proof leaves the acceptance window. When full it refuses (an error, so
/// 503) rather than forget a proof still inside the window.
pub struct InMemoryReplayStore {
    entries: moka::sync::Cache<[u8; 32], i64>,
    /// Entries held: moka's own count lags behind inserts, this one does not.
    held: Arc<AtomicU64>,
    max_entries: u64,
}

impl fmt::Debug for InMemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayStore")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryReplayStore {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_ENTRIES)
    }
}

struct UntilWindowEnds;

impl moka::Expiry<[u8; 32], i64> for UntilWindowEnds {
    fn expire_after_create(&self, _key: &[u8; 32], until: &i64, _now: Instant) -> Option<Duration> {
        let left = until.saturating_sub(crate::time::now()).max(1);
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(1)))
    }
}

impl InMemoryReplayStore {
    /// A store remembering at most `max_entries` proofs (each about 100
    /// bytes): size it for the request rate times the acceptance window.
    #[must_use]
    pub fn new(max_entries: u64) -> Self {
        let held = Arc::new(AtomicU64::new(0));
        let evicted = Arc::clone(&held);
        Self {
            entries: moka::sync::Cache::builder()
                .expire_after(UntilWindowEnds)
                .eviction_listener(move |_key, _until, _cause| {
                    let _ = evicted.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        Some(n.saturating_sub(1))
                    });
                })
                .build(),
            held,
            max_entries,
        }
    }

    fn record(&self, key: [u8; 32], until: i64) -> Result<FirstUse, ReplayStoreError> {
        if self.held.load(Ordering::Acquire) >= self.max_entries {
            // Expired entries are counted until moka's housekeeping runs.
            self.entries.run_pending_tasks();
            if self.held.load(Ordering::Acquire) >= self.max_entries {
                return Err(ReplayStoreError("in-memory replay store full".into()));
            }
        }
        let entry = self.entries.entry(key).or_insert(until);
        Ok(if entry.is_fresh() {
            self.held.fetch_add(1, Ordering::AcqRel);
            FirstUse::Yes
        } else {
            FirstUse::No
        })
    }
}

impl ReplayStore for InMemoryReplayStore {
    fn first_use(&self, key: [u8; 32], until: i64) -> ReplayFuture<'_> {
        Box::pin(std::future::ready(self.record(key, until)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_new_once() {
        let store = InMemoryReplayStore::new(10);
        let until = crate::time::now() + 60;
        assert_eq!(store.first_use([1; 32], until).await, Ok(FirstUse::Yes));
        assert_eq!(store.first_use([1; 32], until).await, Ok(FirstUse::No));
        assert_eq!(store.first_use([2; 32], until).await, Ok(FirstUse::Yes));
    }

    #[tokio::test]
    async fn a_full_store_refuses_instead_of_forgetting() {
        let store = InMemoryReplayStore::new(3);
        let until = crate::time::now() + 60;
        for i in 0..3 {
            assert_eq!(store.first_use([i; 32], until).await, Ok(FirstUse::Yes));
        }
        assert!(store.first_use([9; 32], until).await.is_err());
        assert_eq!(store.first_use([0; 32], until).await.ok(), None);
    }
}
