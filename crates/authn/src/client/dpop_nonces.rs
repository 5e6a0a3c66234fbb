//! [`NonceMemory`]: the last `DPoP-Nonce` each server gave a client
//! (RFC 9449 §8), so the next proof to that server echoes it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Servers remembered at most; past it the memory starts over (a server
/// forgotten asks again with `use_dpop_nonce`, costing one round trip).
const MAX_SERVERS: usize = 256;

/// The longest nonce kept (a server sending more is not echoed).
const MAX_NONCE_LEN: usize = 512;

/// The nonce of each server, by origin (`scheme://host:port`).
#[derive(Debug, Default)]
pub(crate) struct NonceMemory {
    nonces: Mutex<HashMap<String, String>>,
}

/// The origin of `url`, or `None` for a URL without one.
pub(crate) fn origin(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

impl NonceMemory {
    /// The nonce the server at `url` gave last.
    pub(crate) fn get(&self, url: &str) -> Option<String> {
        let origin = origin(url)?;
        self.lock().get(&origin).cloned()
    }

    /// Keeps the `DPoP-Nonce` of a response from `url`, if it has one.
    pub(crate) fn remember(&self, url: &str, headers: &http::HeaderMap) {
        let Some(nonce) = headers
            .get(crate::dpop::DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .filter(|n| !n.is_empty() && n.len() <= MAX_NONCE_LEN)
        else {
            return;
        };
        let Some(origin) = origin(url) else {
            return;
        };
        let mut nonces = self.lock();
        if nonces.get(&origin).is_some_and(|n| n == nonce) {
            return;
        }
        if nonces.len() >= MAX_SERVERS && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.nonces.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("dpop-nonce", value.parse().unwrap());
        headers
    }

    #[test]
    fn nonces_are_kept_per_origin() {
        let memory = NonceMemory::default();
        memory.remember("https://a.example/token", &nonce("n1"));
        memory.remember("https://b.example:8443/x", &nonce("n2"));
        assert_eq!(
            memory.get("https://a.example/other?q").as_deref(),
            Some("n1")
        );
        assert_eq!(memory.get("https://a.example:443/").as_deref(), Some("n1"));
        assert_eq!(memory.get("https://b.example:8443/").as_deref(), Some("n2"));
        assert_eq!(memory.get("https://b.example/"), None, "another port");
        assert_eq!(memory.get("http://a.example/"), None, "another scheme");
        memory.remember("https://a.example/", &nonce("n3"));
        assert_eq!(memory.get("https://a.example/").as_deref(), Some("n3"));
        memory.remember("https://a.example/", &http::HeaderMap::new());
        assert_eq!(memory.get("https://a.example/").as_deref(), Some("n3"));
    }

    #[test]
    fn the_memory_is_bounded_and_odd_nonces_are_ignored() {
        let memory = NonceMemory::default();
        for i in 0..=MAX_SERVERS {
            memory.remember(&format!("https://h{i}.example/"), &nonce("n"));
        }
        assert!(memory.lock().len() <= MAX_SERVERS);
        memory.remember("https://x.example/", &nonce(&"a".repeat(MAX_NONCE_LEN + 1)));
        assert_eq!(memory.get("https://x.example/"), None);
        memory.remember("not a url", &nonce("n"));
    }
}
