//! Signature checks with public keys parsed once per key and algorithm.
//!
//! `jsonwebtoken::crypto::verify` builds the public key from its bytes for
//! every token; for RSA that includes the Montgomery context of the
//! modulus, about a twelfth of an RS256 check (callgrind, in
//! docs/benchmarks.md). [`ParsedKeys`] parses a key for an algorithm at its
//! first use (aws-lc-rs' `ParsedPublicKey`, the same library and the same
//! verification algorithms jsonwebtoken uses) and keeps it with the key, so
//! every later token signed with it pays for the signature alone. HMAC keys
//! go through jsonwebtoken as before.

use std::sync::OnceLock;

use aws_lc_rs::signature::{
    self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

/// One slot per asymmetric algorithm, in [`slot`]'s order.
const SLOTS: usize = 9;

/// A key's parsed forms, one per asymmetric algorithm it has verified.
#[derive(Default)]
pub(crate) struct ParsedKeys {
    slots: [OnceLock<Option<ParsedPublicKey>>; SLOTS],
}

impl ParsedKeys {
    /// Whether `signature` (base64url without padding, as in the token) is
    /// `key`'s signature of `message` with `alg`. The caller has checked that
    /// `alg` fits the key; a key the crypto library refuses verifies nothing.
    pub(crate) fn verify(
        &self,
        key: &DecodingKey,
        alg: Algorithm,
        message: &[u8],
        signature: &str,
    ) -> bool {
        let Some(index) = slot(alg) else {
            // HS256/384/512: a secret, nothing to parse.
            return jsonwebtoken::crypto::verify(signature, message, key, alg).unwrap_or(false);
        };
        let Some(parsed) = self.slots[index].get_or_init(|| parse(key, alg)) else {
            return false;
        };
        URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|signature| parsed.verify_sig(message, &signature).is_ok())
    }
}

/// `key` parsed for `alg`, as jsonwebtoken's aws-lc backend would verify
/// with it, or `None` if aws-lc refuses it for that algorithm.
fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents {
            n: n.as_slice(),
            e: e.as_slice(),
        }
        .to_parsed_public_key(rsa(alg)?)
        .ok(),
        DecodingKeyKind::SecretOrDer(der) => {
            let algorithm: &'static dyn VerificationAlgorithm = match alg {
                Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                Algorithm::EdDSA => &signature::ED25519,
                rsa_alg => rsa(rsa_alg)?,
            };
            ParsedPublicKey::new(algorithm, der).ok()
        }
    }
}

/// The RSA verification parameters of `alg` (jsonwebtoken's: moduli of
/// 2048 to 8192 bits).
fn rsa(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The slot of an asymmetric algorithm; `None` for HMAC (and any algorithm
/// jsonwebtoken may add, which no key kind fits until we say so).
fn slot(alg: Algorithm) -> Option<usize> {
    Some(match alg {
        Algorithm::RS256 => 0,
        Algorithm::RS384 => 1,
        Algorithm::RS512 => 2,
        Algorithm::PS256 => 3,
        Algorithm::PS384 => 4,
        Algorithm::PS512 => 5,
        Algorithm::ES256 => 6,
        Algorithm::ES384 => 7,
        Algorithm::EdDSA => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    /// Several algorithms with fresh key pairs (keys from a JWKS, as RSA
    /// components, go through the validator's tests): the parsed key agrees
    /// with jsonwebtoken on a good signature, a tampered message, a tampered
    /// signature and a signature that is not base64url; and a key parsed
    /// once keeps verifying.
    #[test]
    fn parsed_keys_agree_with_jsonwebtoken() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
        let rng = SystemRandom::new();
        let message = "eyJhbGciOiJ0ZXN0In0.eyJhIjoxfQ";
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_sign = |padding: &'static dyn signature::RsaEncoding| {
            let mut out = vec![0; rsa.public_modulus_len()];
            rsa.sign(padding, &rng, message.as_bytes(), &mut out)
                .unwrap();
            out
        };
        let p256 = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        let cases = [
            (
                Algorithm::RS256,
                rsa_sign(&signature::RSA_PKCS1_SHA256),
                DecodingKey::from_rsa_der(rsa.public_key().as_ref()),
            ),
            (
                Algorithm::PS512,
                rsa_sign(&signature::RSA_PSS_SHA512),
                DecodingKey::from_rsa_der(rsa.public_key().as_ref()),
            ),
            (
                Algorithm::ES256,
                p256.sign(&rng, message.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
                DecodingKey::from_ec_der(p256.public_key().as_ref()),
            ),
            (
                Algorithm::EdDSA,
                ed.sign(message.as_bytes()).as_ref().to_vec(),
                DecodingKey::from_ed_der(ed.public_key().as_ref()),
            ),
        ];
        for (alg, signed, verifying) in cases {
            let signature = URL_SAFE_NO_PAD.encode(&signed);
            let parsed = ParsedKeys::default();
            let raw = |m: &str, s: &str| {
                jsonwebtoken::crypto::verify(s, m.as_bytes(), &verifying, alg).unwrap_or(false)
            };
            for _ in 0..2 {
                assert!(
                    parsed.verify(&verifying, alg, message.as_bytes(), &signature),
                    "{alg:?}"
                );
                assert!(raw(message, &signature), "{alg:?}");
            }
            let tampered_message = format!("{message}x");
            assert!(!parsed.verify(&verifying, alg, tampered_message.as_bytes(), &signature));
            assert!(!raw(&tampered_message, &signature));
            let mut bytes = signed.clone();
            bytes[0] ^= 1;
            let flipped = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(!parsed.verify(&verifying, alg, message.as_bytes(), &flipped));
            assert!(!raw(message, &flipped));
            let padded = format!("{signature}=");
            assert!(!parsed.verify(&verifying, alg, message.as_bytes(), &padded));
            assert!(!parsed.verify(&verifying, alg, message.as_bytes(), "not base64url!"));
            // The key of one algorithm never verifies another's signature.
            let other = if alg == Algorithm::EdDSA {
                Algorithm::ES256
            } else {
                Algorithm::EdDSA
            };
            assert!(!parsed.verify(&verifying, other, message.as_bytes(), &signature));
        }
    }

    #[test]
    fn a_key_the_library_refuses_verifies_nothing() {
        let garbage = DecodingKey::from_rsa_raw_components(&[1, 2, 3], &[1, 0, 1]);
        let parsed = ParsedKeys::default();
        assert!(!parsed.verify(&garbage, Algorithm::RS256, b"m", "AAAA"));
        let garbage = DecodingKey::from_ec_der(&[4, 1, 2, 3]);
        assert!(!parsed.verify(&garbage, Algorithm::ES256, b"m", "AAAA"));
    }

    #[test]
    fn hmac_goes_through_jsonwebtoken() {
        let secret = [7_u8; 32];
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"a": 1}),
            &EncodingKey::from_secret(&secret).unwrap(),
        )
        .unwrap();
        let (message, signature) = token.rsplit_once('.').unwrap();
        let key = DecodingKey::from_secret(&secret).unwrap();
        let parsed = ParsedKeys::default();
        assert!(parsed.verify(&key, Algorithm::HS256, message.as_bytes(), signature));
        assert!(!parsed.verify(&key, Algorithm::HS256, b"other", signature));
    }
}
