//! The public key embedded in a proof's `jwk` header: checked to be public
//! and to fit the proof's `alg`, turned into a verification key, and
//! thumbprinted (RFC 7638).

use crate::error::DpopProofError;
use crate::thumbprint::canonical;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS: usize = 256;

/// A proof's public key, ready to verify its signature.
pub(super) struct ProofKey {
    pub(super) key: DecodingKey,
    /// RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)).
    pub(super) thumbprint: String,
}

impl ProofKey {
    /// The key of `jwk` for `alg`: public, of the type and curve `alg` needs.
    pub(super) fn from_jwk(jwk: &Value, alg: Algorithm) -> Result<Self, DpopProofError> {
        let Value::Object(jwk) = jwk else {
            return Err(DpopProofError::InvalidKey);
        };
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(DpopProofError::PrivateKey);
        }
        let text = |name: &str| match jwk.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            _ => Err(DpopProofError::InvalidKey),
        };
        let kty = text("kty")?;
        let (key, members) = match (alg, kty) {
            (
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
                "RSA",
            ) => {
                let (n, e) = (text("n")?, text("e")?);
                let modulus = URL_SAFE_NO_PAD
                    .decode(n)
                    .map_err(|_| DpopProofError::InvalidKey)?;
                let significant = modulus.iter().skip_while(|&&b| b == 0).count();
                if significant < MIN_RSA_MODULUS {
                    return Err(DpopProofError::InvalidKey);
                }
                let key = DecodingKey::from_rsa_components(n, e)
                    .map_err(|_| DpopProofError::InvalidKey)?;
                (key, canonical(&[("e", e), ("kty", "RSA"), ("n", n)]))
            }
            (Algorithm::ES256 | Algorithm::ES384, "EC") => {
                let (crv, x, y) = (text("crv")?, text("x")?, text("y")?);
                let (want, len) = if alg == Algorithm::ES256 {
                    ("P-256", 32)
                } else {
                    ("P-384", 48)
                };
                if crv != want || decoded_len(x) != Some(len) || decoded_len(y) != Some(len) {
                    return Err(DpopProofError::InvalidKey);
                }
                let key = DecodingKey::from_ec_components(x, y)
                    .map_err(|_| DpopProofError::InvalidKey)?;
                (
                    key,
                    canonical(&[("crv", crv), ("kty", "EC"), ("x", x), ("y", y)]),
                )
            }
            (Algorithm::EdDSA, "OKP") => {
                let (crv, x) = (text("crv")?, text("x")?);
                if crv != "Ed25519" || decoded_len(x) != Some(32) {
                    return Err(DpopProofError::InvalidKey);
                }
                let key =
                    DecodingKey::from_ed_components(x).map_err(|_| DpopProofError::InvalidKey)?;
                (key, canonical(&[("crv", crv), ("kty", "OKP"), ("x", x)]))
            }
            _ => return Err(DpopProofError::InvalidKey),
        };
        Ok(Self {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes())),
        })
    }
}

fn decoded_len(b64: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(b64).ok().map(|v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn private_members_are_refused() {
        for member in PRIVATE_MEMBERS {
            let mut jwk = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
            jwk[member] = json!("AAAA");
            assert_eq!(
                ProofKey::from_jwk(&jwk, Algorithm::ES256).err(),
                Some(DpopProofError::PrivateKey),
                "{member}"
            );
        }
    }

    #[test]
    fn keys_that_do_not_fit_the_alg_are_refused() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let p256 = json!({"kty": "EC", "crv": "P-256", "x": x, "y": x});
        assert_eq!(
            ProofKey::from_jwk(&p256, Algorithm::ES384).err(),
            Some(DpopProofError::InvalidKey)
        );
        assert_eq!(
            ProofKey::from_jwk(&p256, Algorithm::RS256).err(),
            Some(DpopProofError::InvalidKey)
        );
        let short_rsa = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([7u8; 128]), "e": "AQAB"});
        assert_eq!(
            ProofKey::from_jwk(&short_rsa, Algorithm::RS256).err(),
            Some(DpopProofError::InvalidKey)
        );
        assert_eq!(
            ProofKey::from_jwk(&json!("key"), Algorithm::ES256).err(),
            Some(DpopProofError::InvalidKey)
        );
    }
}
