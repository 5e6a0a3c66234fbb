//! Server nonces (RFC 9449 §8): issued in `DPoP-Nonce`, rotated every
//! period, and checked without state. A nonce is a period number and its
//! HMAC under a secret; the current and the previous period's nonces are
//! accepted, so a rotation never fails a request in flight. Replicas that
//! share the secret accept each other's nonces.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use std::fmt;
use std::time::Duration;

/// The default rotation period of nonces.
pub const DEFAULT_NONCE_ROTATION: Duration = Duration::from_secs(300);

/// Bytes of the HMAC kept in a nonce.
const TAG_LEN: usize = 16;

/// Issues and checks server nonces.
#[derive(Clone)]
pub(super) struct NonceIssuer {
    key: hmac::Key,
    period: i64,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// Nonces under `secret`, rotated every `period` (at least a second).
    pub(super) fn new(secret: &[u8], period: Duration) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            period: i64::try_from(period.as_secs().max(1)).unwrap_or(i64::MAX),
        }
    }

    /// Nonces under a random secret: this process only.
    pub(super) fn random(period: Duration) -> Self {
        let mut secret = [0u8; 32];
        // aws-lc-rs' generator does not fail on supported platforms; were it
        // to, a zero secret still yields nonces the client must echo.
        let _ = aws_lc_rs::rand::fill(&mut secret);
        Self::new(&secret, period)
    }

    fn slot(&self, now: i64) -> i64 {
        now.div_euclid(self.period)
    }

    fn nonce_for(&self, slot: i64) -> String {
        let slot = slot.to_be_bytes();
        let tag = hmac::sign(&self.key, &slot);
        let mut raw = [0u8; 8 + TAG_LEN];
        raw[..8].copy_from_slice(&slot);
        raw[8..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce to hand out now.
    pub(super) fn current(&self, now: i64) -> HeaderValue {
        HeaderValue::try_from(self.nonce_for(self.slot(now)))
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }

    /// Whether `nonce` is this period's or the previous one's.
    pub(super) fn accepts(&self, nonce: &str, now: i64) -> bool {
        let mut raw = [0u8; 8 + TAG_LEN];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(len) if len == raw.len() => {}
            _ => return false,
        }
        let (slot, tag) = raw.split_at(8);
        let mut slot_bytes = [0u8; 8];
        slot_bytes.copy_from_slice(slot);
        let slot = i64::from_be_bytes(slot_bytes);
        let current = self.slot(now);
        if slot != current && slot != current - 1 {
            return false;
        }
        let expected = hmac::sign(&self.key, slot_bytes.as_slice());
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected.as_ref()[..TAG_LEN], tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_previous_nonces_are_accepted_older_ones_not() {
        let issuer = NonceIssuer::new(b"secret", Duration::from_secs(60));
        let t = 1_000_000;
        let nonce = issuer.current(t);
        let nonce = nonce.to_str().unwrap();
        assert!(issuer.accepts(nonce, t));
        assert!(issuer.accepts(nonce, t + 60), "previous period");
        assert!(!issuer.accepts(nonce, t + 120), "stale");
        assert!(!issuer.accepts(nonce, t - 60), "from the future");
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let issuer = NonceIssuer::new(b"secret", Duration::from_secs(60));
        let other = NonceIssuer::new(b"other", Duration::from_secs(60));
        let t = 1_000_000;
        assert!(!issuer.accepts(other.current(t).to_str().unwrap(), t));
        for junk in ["", "abc", "!!!!", &"A".repeat(500)] {
            assert!(!issuer.accepts(junk, t), "{junk}");
        }
        let one = NonceIssuer::random(Duration::from_secs(1));
        let two = NonceIssuer::random(Duration::from_secs(1));
        assert!(!one.accepts(two.current(t).to_str().unwrap(), t));
    }
}
