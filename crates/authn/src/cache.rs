//! The validated-token cache, on by default: repeated requests with the same
//! token skip parsing and the signature check.
//!
//! - Bounded by entries and by memory: each entry weighs an estimate of its
//!   size in bytes, and never less than the memory bound divided by the
//!   entry bound, so neither bound can be passed.
//! - Keyed by a randomly seeded 64-bit hash of the whole token (foldhash:
//!   fast on a kilobyte, which matters on a hit); each entry holds the full
//!   token, compared on every hit, so a hash collision is a miss and never
//!   a confusion between two tokens. Only validated tokens are inserted, so
//!   nobody can fill the cache with keys of their choosing.
//! - An entry never outlives the token's `exp`; a token is cached only when
//!   valid without the leeway (`exp` ahead, `nbf` passed), and a hit is
//!   rechecked against the clock.
//! - An entry remembers the key epoch of the key set that verified it; once
//!   a refresh drops a key (or replaces it under the same `kid`), the epoch
//!   moves and every entry verified before is a miss, validated again.

use crate::principal::Principal;
use foldhash::fast::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default bound on cached tokens.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 10_000;

/// The default bound on the cache's memory, in bytes (an estimate per entry).
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// What an entry costs besides its token and claims: the principal, the
/// entry and moka's bookkeeping.
const ENTRY_OVERHEAD: u64 = 256;

/// The key is already a seeded hash of the token; hashing it again is waste.
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

/// A key set's epoch as a validation saw it: the set of keys that could
/// have verified the token, numbered. [`JwksCache`](crate::JwksCache) moves
/// the counter when a refresh drops a key.
#[derive(Clone)]
pub(crate) struct KeyEpoch {
    counter: Arc<AtomicU64>,
    seen: u64,
}

impl KeyEpoch {
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn new(counter: Arc<AtomicU64>, seen: u64) -> Self {
        Self { counter, seen }
    }

    /// No key was dropped since this epoch was seen.
    fn current(&self) -> bool {
        self.counter.load(Ordering::Acquire) == self.seen
    }
}

struct Entry<E> {
    principal: Principal<E>,
    /// `None` for keys that never change (static keys, an HMAC secret).
    keys: Option<KeyEpoch>,
    /// The entry's estimated size in bytes, as the weigher counts it.
    weight: u32,
}

struct UntilExp;

impl<E> moka::Expiry<u64, Arc<Entry<E>>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Arc<Entry<E>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value
            .principal
            .claims()
            .exp
            .saturating_sub(crate::time::now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

/// The bounds of the cache; see [`TokenCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenCacheBounds {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
}

impl Default for TokenCacheBounds {
    fn default() -> Self {
        Self {
            entries: DEFAULT_TOKEN_CACHE_ENTRIES,
            bytes: DEFAULT_TOKEN_CACHE_BYTES,
        }
    }
}

pub(crate) struct TokenCache<E> {
    inner: Arc<CacheInner<E>>,
}

type Entries<E> = moka::sync::Cache<u64, Arc<Entry<E>>, BuildHasherDefault<PrehashedKey>>;

struct CacheInner<E> {
    entries: Entries<E>,
    hasher: RandomState,
    /// The least weight of an entry: `bytes / entries`, rounded up.
    min_weight: u64,
}

impl<E> Clone for TokenCache<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: Send + Sync + 'static> TokenCache<E> {
    /// A cache within `bounds`, or none when either bound is 0.
    pub(crate) fn new(bounds: TokenCacheBounds) -> Option<Self> {
        if bounds.entries == 0 || bounds.bytes == 0 {
            return None;
        }
        let min_weight = bounds.bytes.div_ceil(bounds.entries);
        let entries = moka::sync::Cache::builder()
            .max_capacity(bounds.bytes)
            .weigher(|_key: &u64, entry: &Arc<Entry<E>>| entry.weight)
            .expire_after(UntilExp)
            .build_with_hasher(BuildHasherDefault::default());
        Some(Self {
            inner: Arc::new(CacheInner {
                entries,
                hasher: RandomState::default(),
                min_weight,
            }),
        })
    }

    /// The cache key of `token`.
    pub(crate) fn key(&self, token: &str) -> u64 {
        self.inner.hasher.hash_one(token)
    }

    /// The cached principal of `token`, or its cache key to
    /// [`insert`](Self::insert) it once validated.
    pub(crate) fn get(&self, token: &str, now: i64) -> Result<Principal<E>, u64> {
        let key = self.key(token);
        let Some(entry) = self.inner.entries.get(&key) else {
            return Err(key);
        };
        if entry.principal.bearer_token() != token {
            return Err(key);
        }
        let claims = entry.principal.claims();
        let in_time = claims.exp > now && claims.nbf.is_none_or(|nbf| nbf <= now);
        if !in_time || entry.keys.as_ref().is_some_and(|k| !k.current()) {
            self.inner.entries.invalidate(&key);
            return Err(key);
        }
        Ok(entry.principal.clone())
    }

    /// Caches a principal verified with keys of epoch `keys`, under the
    /// `key` [`get`](Self::get) returned for its token.
    pub(crate) fn insert(
        &self,
        key: u64,
        principal: &Principal<E>,
        keys: Option<KeyEpoch>,
        now: i64,
    ) {
        let claims = principal.claims();
        // A token accepted only thanks to the leeway is not cached.
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now) {
            return;
        }
        let token = principal.bearer_token();
        // The token once, and its claims deserialized: about three times
        // their JSON, which is three quarters of the token.
        let estimate = ENTRY_OVERHEAD + 4 * token.len() as u64;
        let weight = u32::try_from(estimate.max(self.inner.min_weight)).unwrap_or(u32::MAX);
        self.inner.entries.insert(
            key,
            Arc::new(Entry {
                principal: principal.clone(),
                keys,
                weight,
            }),
        );
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

    fn put(
        cache: &TokenCache<crate::ExtraClaims>,
        p: &Principal,
        keys: Option<KeyEpoch>,
        now: i64,
    ) {
        cache.insert(cache.key(p.bearer_token()), p, keys, now);
    }

    fn cache(entries: u64, bytes: u64) -> TokenCache<crate::ExtraClaims> {
        TokenCache::new(TokenCacheBounds { entries, bytes }).unwrap()
    }

    #[test]
    fn hit_returns_the_same_principal_and_misses_other_tokens() {
        let cache = cache(10, 1 << 20);
        let now = crate::time::now();
        put(&cache, &principal("a.b.c", now + 100), None, now);
        assert_eq!(cache.get("a.b.c", now).unwrap().bearer_token(), "a.b.c");
        assert!(cache.get("a.b.d", now).is_err());
    }

    #[test]
    fn entries_never_outlive_exp() {
        let cache = cache(10, 1 << 20);
        let now = crate::time::now();
        put(&cache, &principal("t", now + 5), None, now);
        assert!(cache.get("t", now + 5).is_err());
        assert!(cache.get("t", now).is_err(), "an expired hit is evicted");
        put(&cache, &principal("old", now - 1), None, now);
        assert!(
            cache.get("old", now - 10).is_err(),
            "expired tokens are not cached"
        );
    }

    #[test]
    fn tokens_not_yet_valid_are_never_served() {
        let cache = cache(10, 1 << 20);
        let now = crate::time::now();
        let claims: Claims = serde_json::from_value(
            serde_json::json!({"iss": "i", "exp": now + 100, "nbf": now + 30}),
        )
        .unwrap();
        put(&cache, &Principal::new("i", claims, "early"), None, now);
        assert!(
            cache.get("early", now + 40).is_err(),
            "not cached within the leeway"
        );
        let claims: Claims =
            serde_json::from_value(serde_json::json!({"iss": "i", "exp": now + 100, "nbf": now}))
                .unwrap();
        put(&cache, &Principal::new("i", claims, "now"), None, now);
        assert!(cache.get("now", now).is_ok());
        assert!(
            cache.get("now", now - 1).is_err(),
            "a clock set back before nbf misses"
        );
    }

    #[test]
    fn a_moved_key_epoch_is_a_miss() {
        let cache = cache(10, 1 << 20);
        let now = crate::time::now();
        let counter = Arc::new(AtomicU64::new(3));
        let keys = KeyEpoch::new(Arc::clone(&counter), 3);
        put(&cache, &principal("t", now + 100), Some(keys), now);
        assert!(cache.get("t", now).is_ok());
        counter.fetch_add(1, Ordering::Release);
        assert!(cache.get("t", now).is_err());
    }

    #[test]
    fn zero_bounds_mean_no_cache() {
        assert!(
            TokenCache::<crate::ExtraClaims>::new(TokenCacheBounds {
                entries: 0,
                bytes: 1
            })
            .is_none()
        );
        assert!(
            TokenCache::<crate::ExtraClaims>::new(TokenCacheBounds {
                entries: 1,
                bytes: 0
            })
            .is_none()
        );
    }

    #[test]
    fn capacity_pressure_never_grows_past_the_entry_bound() {
        let cache = cache(100, 1 << 30);
        let now = crate::time::now();
        for i in 0..5_000 {
            let token = format!("t.{i}.s");
            put(&cache, &principal(&token, now + 600), None, now);
        }
        cache.inner.entries.run_pending_tasks();
        assert!(
            cache.inner.entries.entry_count() <= 100,
            "{} entries",
            cache.inner.entries.entry_count()
        );
    }

    #[test]
    fn capacity_pressure_never_grows_past_the_memory_bound() {
        let bytes = 256 * 1024;
        let cache = cache(1_000_000, bytes);
        let now = crate::time::now();
        let big = "x".repeat(4_000);
        for i in 0..2_000 {
            let token = format!("{big}.{i}.s");
            put(&cache, &principal(&token, now + 600), None, now);
        }
        cache.inner.entries.run_pending_tasks();
        let weighed = cache.inner.entries.weighted_size();
        assert!(weighed <= bytes, "{weighed} bytes");
        assert!(cache.inner.entries.entry_count() <= bytes / 16_000 + 1);
    }
}
