//! [`DpopKey`]: a client's DPoP key pair for tests, minting proofs
//! ([`ProofBuilder`]) for a method, URL and access token; pair it with
//! [`TokenBuilder::bound_to`](super::TokenBuilder::bound_to) for the token.

use super::key::{TestKey, alg_name};
use crate::thumbprint::jwk_thumbprint;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

/// A DPoP key pair of a test client.
///
/// ```
/// use tessera_authn::Algorithm;
/// use tessera_authn::test_util::DpopKey;
///
/// let key = DpopKey::generate(Algorithm::ES256);
/// let proof = key.proof("GET", "https://api.example/me").access_token("eyJ...").sign();
/// assert_eq!(proof.split('.').count(), 3);
/// ```
pub struct DpopKey {
    key: TestKey,
    jwk: Map<String, Value>,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.key.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh key pair for `alg` (RS*, PS*, ES256, ES384, EdDSA).
    ///
    /// # Panics
    /// For HS* or an algorithm aws-lc-rs cannot generate a key for.
    pub fn generate(alg: Algorithm) -> Self {
        assert!(
            !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512),
            "dpop keys are asymmetric"
        );
        let key = TestKey::generate("dpop".into(), alg).expect("key generation");
        let mut jwk = key
            .jwk()
            .expect("public key")
            .as_object()
            .cloned()
            .unwrap_or_default();
        for member in ["kid", "use", "alg"] {
            jwk.remove(member);
        }
        let thumbprint = jwk_thumbprint(&jwk).expect("a public jwk");
        Self {
            key,
            jwk,
            thumbprint,
        }
    }

    /// The algorithm proofs are signed with.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.key.alg
    }

    /// The public key as a JWK, as proofs embed it.
    #[must_use]
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.jwk
    }

    /// The RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key.
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A proof for a `method` request to `url` (its query and fragment
    /// are dropped from `htu`), issued now with a random `jti`.
    pub fn proof(&self, method: &str, url: &str) -> ProofBuilder<'_> {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = Map::new();
        claims.insert("jti".into(), json!(super::oauth::random_id()));
        claims.insert("htm".into(), json!(method));
        claims.insert("htu".into(), json!(htu));
        claims.insert("iat".into(), json!(crate::time::now()));
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert("alg".into(), json!(alg_name(self.key.alg)));
        header.insert("jwk".into(), Value::Object(self.jwk.clone()));
        ProofBuilder {
            key: self,
            header,
            claims,
        }
    }

    /// Signs `message` with this key as `alg` says (for hostile proofs).
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(self.key.alg, message, false)
    }
}

/// One DPoP proof being minted; see [`DpopKey::proof`].
#[must_use]
pub struct ProofBuilder<'a> {
    key: &'a DpopKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl fmt::Debug for ProofBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofBuilder")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl ProofBuilder<'_> {
    /// Binds the proof to this access token: `ath` = base64url(SHA-256(token)).
    pub fn access_token(self, token: &str) -> Self {
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        self.claim("ath", ath)
    }

    /// The server nonce to echo.
    pub fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce)
    }

    /// `iat`, seconds relative to now (negative: in the past).
    pub fn issued_in_secs(self, secs: i64) -> Self {
        self.claim("iat", crate::time::now() + secs)
    }

    /// The `jti` (default random).
    pub fn jti(self, jti: &str) -> Self {
        self.claim("jti", jti)
    }

    /// Sets a payload claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Removes a payload claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header member (`typ`, `alg`, `jwk`...), for hostile proofs.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.into(), value.into());
        self
    }

    /// Signs and returns the compact proof.
    pub fn sign(self) -> String {
        let header = serde_json::to_vec(&self.header).expect("json");
        let claims = serde_json::to_vec(&self.claims).expect("json");
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = self.key.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}
