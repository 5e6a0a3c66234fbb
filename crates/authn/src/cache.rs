//! The validated-token cache: repeated requests with the same token skip
//! parsing and the signature check.
//!
//! Entries are keyed by a randomly keyed 64-bit hash of the token and hold
//! the full token, compared on every hit, so a hash collision is a miss and
//! never a confusion between two tokens. An entry never outlives the token's
//! `exp`, and a hit is rechecked against the clock.

use crate::principal::Principal;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hash of the key is already a keyed SipHash; hashing it again is waste.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct UntilExp;

impl<E> moka::Expiry<u64, Principal<E>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Principal<E>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.claims().exp.saturating_sub(crate::time::now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

pub(crate) struct TokenCache<E> {
    inner: Arc<CacheInner<E>>,
}

struct CacheInner<E> {
    entries: moka::sync::Cache<u64, Principal<E>, BuildHasherDefault<PrehashedKey>>,
    hasher: RandomState,
}

impl<E> Clone for TokenCache<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: Send + Sync + 'static> TokenCache<E> {
    pub(crate) fn new(capacity: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilExp)
            .build_with_hasher(BuildHasherDefault::default());
        Self {
            inner: Arc::new(CacheInner {
                entries,
                hasher: RandomState::new(),
            }),
        }
    }

    pub(crate) fn get(&self, token: &str, now: i64) -> Option<Principal<E>> {
        let key = self.inner.hasher.hash_one(token);
        let principal = self.inner.entries.get(&key)?;
        if principal.bearer_token() != token {
            return None;
        }
        if principal.claims().exp <= now {
            self.inner.entries.invalidate(&key);
            return None;
        }
        Some(principal)
    }

    pub(crate) fn insert(&self, token: &str, principal: &Principal<E>, now: i64) {
        // A token accepted only thanks to the leeway is not cached.
        if principal.claims().exp <= now {
            return;
        }
        let key = self.inner.hasher.hash_one(token);
        self.inner.entries.insert(key, principal.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Claims;

    fn principal(token: &str, exp: i64) -> Principal {
        let claims: Claims =
            serde_json::from_value(serde_json::json!({"iss": "i", "exp": exp})).unwrap();
        Principal::new("i", claims, token)
    }

    #[test]
    fn hit_returns_the_same_principal_and_misses_other_tokens() {
        let cache = TokenCache::new(10);
        let now = crate::time::now();
        cache.insert("a.b.c", &principal("a.b.c", now + 100), now);
        assert_eq!(cache.get("a.b.c", now).unwrap().bearer_token(), "a.b.c");
        assert!(cache.get("a.b.d", now).is_none());
    }

    #[test]
    fn entries_never_outlive_exp() {
        let cache = TokenCache::new(10);
        let now = crate::time::now();
        cache.insert("t", &principal("t", now + 5), now);
        assert!(cache.get("t", now + 5).is_none());
        assert!(cache.get("t", now).is_none(), "an expired hit is evicted");
        cache.insert("old", &principal("old", now - 1), now);
        assert!(
            cache.get("old", now - 10).is_none(),
            "expired tokens are not cached"
        );
    }
}
