//! Verification keys: JWK, JWKS and PEM parsing into a [`KeySet`].
//!
//! Parsing is tolerant per key and strict per set: a key we cannot use (an
//! unknown `kty`, an encryption key, an RSA modulus under 2048 bits) stays in
//! the set as *unusable*, so a token naming it is rejected at once instead of
//! triggering a refetch, while the other keys keep working.
//!
//! ```
//! use tessera_authn::KeySet;
//!
//! let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA",
//!                "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
//! let keys = KeySet::from_jwks(jwks.as_bytes()).unwrap();
//! assert_eq!(keys.len(), 1);
//! assert!(keys.kids().any(|k| k == "k1"));
//! ```

use crate::error::KeyError;
use crate::signature::ParsedKeys;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::Arc;

/// The most keys a JWKS document may hold by default.
pub const DEFAULT_MAX_KEYS: usize = 64;

/// Smallest RSA modulus we verify with, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The family and curve of a key: what it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::EcP256, ES256)
                | (KeyKind::EcP384, ES384)
                | (KeyKind::Ed25519, EdDSA)
                | (KeyKind::Hmac, HS256 | HS384 | HS512)
        )
    }
}

/// One verification key, bound to what its JWK declared.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    /// `Err(reason)` for a key listed in the set that may never verify a token.
    usable: Result<Usable, &'static str>,
}

struct Usable {
    kind: KeyKind,
    /// The JWK's `alg`, which binds the key to exactly that algorithm.
    alg: Option<Algorithm>,
    key: DecodingKey,
    /// The key parsed for each algorithm it verified, at first use.
    parsed: ParsedKeys,
    /// A digest of the key material, its type and its `alg`: two keys with
    /// the same kid and fingerprint verify the same tokens.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    fingerprint: [u8; 32],
}

/// A key that may verify tokens signed with the algorithm it was found for.
#[derive(Clone, Copy)]
pub(crate) struct FoundKey<'a> {
    usable: &'a Usable,
    alg: Algorithm,
}

impl FoundKey<'_> {
    /// Whether `signature` (base64url, as in the token) is this key's
    /// signature of `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &str) -> bool {
        self.usable
            .parsed
            .verify(&self.usable.key, self.alg, message, signature)
    }
}

impl VerifyingKey {
    /// This key, if it may verify a token signed with `alg`.
    pub(crate) fn for_alg(&self, alg: Algorithm) -> Option<FoundKey<'_>> {
        let usable = self.usable.as_ref().ok()?;
        if !usable.kind.fits(alg) {
            return None;
        }
        match usable.alg {
            Some(bound) if bound != alg => None,
            _ => Some(FoundKey { usable, alg }),
        }
    }

    fn unusable(kid: Option<String>, reason: &'static str) -> Self {
        Self {
            kid,
            usable: Err(reason),
        }
    }

    fn usable(
        kid: Option<String>,
        kind: KeyKind,
        alg: Option<Algorithm>,
        key: DecodingKey,
        material: &[&[u8]],
    ) -> Self {
        let mut digest = Sha256::new();
        digest.update(format!("{kind:?}/{alg:?}").as_bytes());
        for part in material {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Self {
            kid,
            usable: Ok(Usable {
                kind,
                alg,
                key,
                parsed: ParsedKeys::default(),
                fingerprint: digest.finalize().into(),
            }),
        }
    }

    /// Whether `other` is this key: same kid, type, `alg` and material.
    #[cfg(feature = "remote")]
    fn same_as(&self, other: &VerifyingKey) -> bool {
        match (&self.usable, &other.usable) {
            (Ok(a), Ok(b)) => self.kid == other.kid && a.fingerprint == b.fingerprint,
            _ => false,
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("VerifyingKey");
        d.field("kid", &self.kid);
        match &self.usable {
            Ok(u) => d.field("kind", &u.kind).field("alg", &u.alg),
            Err(reason) => d.field("unusable", reason),
        };
        d.finish()
    }
}

/// A set of verification keys, as published in a JWKS document or
/// configured statically.
///
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Arc<[Arc<VerifyingKey>]>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter()).finish()
    }
}

/// What a key lookup found.
pub(crate) enum Found<'a> {
    Key(FoundKey<'a>),
    /// The kid exists but may not verify this token.
    Mismatch,
    /// No key has that kid (or, without a kid, no single key fits).
    Unknown,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`) with at most
    /// [`DEFAULT_MAX_KEYS`] keys.
    pub fn from_jwks(document: &[u8]) -> Result<Self, KeyError> {
        Self::from_jwks_limited(document, DEFAULT_MAX_KEYS)
    }

    /// Parses a JWKS document holding at most `max_keys` keys.
    pub fn from_jwks_limited(document: &[u8], max_keys: usize) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc =
            serde_json::from_slice(document).map_err(|e| KeyError::InvalidJwks(e.to_string()))?;
        if doc.keys.len() > max_keys {
            return Err(KeyError::TooManyKeys {
                count: doc.keys.len(),
                limit: max_keys,
            });
        }
        let keys = doc
            .keys
            .into_iter()
            .map(parse_jwk_value)
            .collect::<Vec<_>>();
        Ok(Self::from_keys(keys))
    }

    /// Parses a single JWK. Unlike inside a set, a key we cannot use is an error.
    pub fn from_jwk(jwk: &str) -> Result<Self, KeyError> {
        let value: serde_json::Value =
            serde_json::from_str(jwk).map_err(|e| KeyError::InvalidKey(e.to_string()))?;
        let key = parse_jwk_value(value);
        if let Err(reason) = &key.usable {
            return Err(KeyError::InvalidKey((*reason).to_owned()));
        }
        Ok(Self::from_keys(vec![key]))
    }

    /// A public key in PEM (SPKI `PUBLIC KEY`, or `RSA PUBLIC KEY`), RSA, EC
    /// (P-256, P-384) or Ed25519, optionally under a `kid`. Without `kid`, the
    /// key verifies tokens without a `kid` header.
    pub fn from_pem(pem: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        let kid = kid.map(str::to_owned);
        let key = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            VerifyingKey::usable(kid, KeyKind::Rsa, None, key, &[pem])
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let kind = match key.try_get_as_bytes().map(<[u8]>::len) {
                Ok(65) => KeyKind::EcP256,
                Ok(97) => KeyKind::EcP384,
                _ => return Err(KeyError::InvalidKey("unsupported ec curve".into())),
            };
            VerifyingKey::usable(kid, kind, None, key, &[pem])
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            VerifyingKey::usable(kid, KeyKind::Ed25519, None, key, &[pem])
        } else {
            return Err(KeyError::InvalidKey(
                "not an RSA, EC or Ed25519 public key in PEM".into(),
            ));
        };
        Ok(Self::from_keys(vec![key]))
    }

    /// A shared secret for HS256/384/512. Only ever used when configured
    /// explicitly on an issuer.
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::InvalidKey(
                "hmac secret shorter than 32 bytes".into(),
            ));
        }
        let key =
            DecodingKey::from_secret(secret).map_err(|e| KeyError::InvalidKey(e.to_string()))?;
        Ok(Self::from_keys(vec![VerifyingKey::usable(
            None,
            KeyKind::Hmac,
            None,
            key,
            &[secret],
        )]))
    }

    /// Merges two sets (for an issuer configured with several static keys).
    #[must_use]
    pub fn merge(&self, other: &KeySet) -> KeySet {
        let keys: Vec<_> = self.keys.iter().chain(other.keys.iter()).cloned().collect();
        KeySet { keys: keys.into() }
    }

    fn from_keys(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys: keys.into_iter().map(Arc::new).collect(),
        }
    }

    /// Whether a key of this set that may verify tokens is missing from
    /// `next`: removed, or replaced by other material under its kid.
    #[cfg(feature = "remote")]
    pub(crate) fn loses_keys_in(&self, next: &KeySet) -> bool {
        self.keys
            .iter()
            .filter(|k| k.usable.is_ok())
            .any(|k| !next.keys.iter().any(|n| k.same_as(n)))
    }

    /// Number of keys, usable or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids in the set.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    /// Number of keys that may verify some token.
    #[must_use]
    pub fn usable_len(&self) -> usize {
        self.keys.iter().filter(|k| k.usable.is_ok()).count()
    }

    /// Finds the key for a token. With a `kid`, only keys with that kid are
    /// considered. Without one, the token is accepted only if exactly one key
    /// of the set fits its algorithm: trying several keys would let one token
    /// cost many signature checks.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Found<'_> {
        match kid {
            Some(kid) => {
                let mut named = false;
                for key in self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                    named = true;
                    if let Some(dk) = key.for_alg(alg) {
                        return Found::Key(dk);
                    }
                }
                if named {
                    Found::Mismatch
                } else {
                    Found::Unknown
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter_map(|k| k.for_alg(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(dk), None) => Found::Key(dk),
                    _ => Found::Unknown,
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    /// A private member: a JWKS must never carry one; such a key is refused.
    #[serde(default)]
    d: Option<serde_json::Value>,
}

fn parse_jwk_value(value: serde_json::Value) -> VerifyingKey {
    let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
    match serde_json::from_value::<RawJwk>(value) {
        Ok(raw) => parse_jwk(raw),
        Err(_) => VerifyingKey::unusable(kid, "malformed jwk"),
    }
}

fn parse_jwk(raw: RawJwk) -> VerifyingKey {
    let kid = raw.kid.clone();
    match build_jwk(&raw) {
        Ok((kind, alg, key, material)) => VerifyingKey::usable(kid, kind, alg, key, &[&material]),
        Err(reason) => VerifyingKey::unusable(kid, reason),
    }
}

fn b64(field: Option<&String>) -> Result<Vec<u8>, &'static str> {
    let s = field.ok_or("jwk member missing")?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "jwk member is not base64url")
}

/// The key, and its material (the bytes that decide what it verifies).
type BuiltKey = (KeyKind, Option<Algorithm>, DecodingKey, Vec<u8>);

fn build_jwk(raw: &RawJwk) -> Result<BuiltKey, &'static str> {
    if raw.d.is_some() {
        return Err("jwk carries a private key member");
    }
    match raw.use_.as_deref() {
        None | Some("sig") => {}
        Some(_) => return Err("jwk is not a signature key"),
    }
    if let Some(ops) = &raw.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("jwk key_ops does not allow verify");
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => Some(
            parse_asymmetric_alg(name).ok_or("jwk alg is not a supported signature algorithm")?,
        ),
    };
    let (kind, key, material) = match raw.kty.as_str() {
        "RSA" => {
            let n = b64(raw.n.as_ref())?;
            let e = b64(raw.e.as_ref())?;
            let n = strip_leading_zeros(&n);
            if n.len() * 8 < MIN_RSA_BITS {
                return Err("rsa modulus under 2048 bits");
            }
            if e.is_empty() || e.len() > 8 {
                return Err("rsa exponent out of range");
            }
            let key = DecodingKey::from_rsa_raw_components(n, &e);
            let mut material = (n.len() as u64).to_be_bytes().to_vec();
            material.extend_from_slice(n);
            material.extend_from_slice(&e);
            (KeyKind::Rsa, key, material)
        }
        "EC" => {
            let (kind, len) = match raw.crv.as_deref() {
                Some("P-256") => (KeyKind::EcP256, 32),
                Some("P-384") => (KeyKind::EcP384, 48),
                _ => return Err("unsupported ec curve"),
            };
            let x = b64(raw.x.as_ref())?;
            let y = b64(raw.y.as_ref())?;
            if x.len() != len || y.len() != len {
                return Err("ec coordinates of the wrong length");
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point), point)
        }
        "OKP" => {
            if raw.crv.as_deref() != Some("Ed25519") {
                return Err("unsupported okp curve");
            }
            let x = b64(raw.x.as_ref())?;
            if x.len() != 32 {
                return Err("ed25519 key of the wrong length");
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x), x)
        }
        // Symmetric keys never come from a key set: HS* needs an explicit secret.
        "oct" => return Err("symmetric jwk refused"),
        _ => return Err("unsupported key type"),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err("jwk alg does not fit its key type");
    }
    Ok((kind, alg, key, material))
}

/// The asymmetric algorithms we verify; HS* and `none` are never valid in a JWK.
pub(crate) fn parse_asymmetric_alg(name: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" | "Ed25519" => EdDSA,
        _ => return None,
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    #[test]
    fn alg_binds_the_key() {
        let set = KeySet::from_jwk(ED_JWK).unwrap();
        assert!(matches!(
            set.find(Some("k1"), Algorithm::EdDSA),
            Found::Key(_)
        ));
        assert!(matches!(
            set.find(Some("k1"), Algorithm::ES256),
            Found::Mismatch
        ));
        assert!(matches!(
            set.find(Some("k2"), Algorithm::EdDSA),
            Found::Unknown
        ));
    }

    #[test]
    fn enc_keys_and_private_members_are_unusable() {
        let enc = ED_JWK.replace(r#""alg":"EdDSA""#, r#""use":"enc""#);
        let set = KeySet::from_jwks(format!(r#"{{"keys":[{enc}]}}"#).as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.usable_len(), 0);
        assert!(matches!(
            set.find(Some("k1"), Algorithm::EdDSA),
            Found::Mismatch
        ));
        let private = ED_JWK.replace(r#""alg":"EdDSA""#, r#""d":"AAAA""#);
        assert!(KeySet::from_jwk(&private).is_err());
    }

    #[test]
    fn symmetric_jwks_are_refused() {
        let set = KeySet::from_jwks(
            br#"{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            set.find(Some("h"), Algorithm::HS256),
            Found::Mismatch
        ));
    }

    #[test]
    fn key_count_is_capped() {
        let doc = format!(r#"{{"keys":[{}]}}"#, [ED_JWK; 3].join(","));
        assert!(matches!(
            KeySet::from_jwks_limited(doc.as_bytes(), 2),
            Err(KeyError::TooManyKeys { count: 3, limit: 2 })
        ));
    }

    #[test]
    fn hostile_documents_are_errors_not_panics() {
        for doc in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"keys\":{}}",
            b"{\"keys\":[1,\"x\",null]}",
            b"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}",
            b"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        ] {
            if let Ok(set) = KeySet::from_jwks(doc) {
                assert_eq!(set.usable_len(), 0);
            }
        }
    }

    #[test]
    fn without_kid_only_a_single_fitting_key_is_used() {
        let a = KeySet::from_jwk(&ED_JWK.replace(r#""kid":"k1","#, "")).unwrap();
        assert!(matches!(a.find(None, Algorithm::EdDSA), Found::Key(_)));
        let two = a.merge(&a);
        assert!(matches!(two.find(None, Algorithm::EdDSA), Found::Unknown));
    }

    #[test]
    #[cfg(feature = "remote")]
    fn a_set_loses_keys_when_one_is_dropped_or_replaced_under_its_kid() {
        let one = KeySet::from_jwk(ED_JWK).unwrap();
        let other = KeySet::from_jwk(&ED_JWK.replace(r#""kid":"k1""#, r#""kid":"k2""#)).unwrap();
        let both = one.merge(&other);
        assert!(!one.loses_keys_in(&one), "the same set again");
        assert!(!one.loses_keys_in(&both), "a key added");
        assert!(both.loses_keys_in(&one), "a key dropped");
        assert!(one.loses_keys_in(&other), "the kid renamed");
        assert!(one.loses_keys_in(&KeySet::default()), "every key dropped");
        let replaced = KeySet::from_jwk(&ED_JWK.replace(
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "A1qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        ))
        .unwrap();
        assert!(
            one.loses_keys_in(&replaced),
            "other material under the same kid"
        );
        let unusable =
            KeySet::from_jwks(br#"{"keys":[{"kty":"oct","k":"AAAA","kid":"h"}]}"#).unwrap();
        assert!(
            !unusable.loses_keys_in(&KeySet::default()),
            "unusable keys verified nothing"
        );
    }
}
