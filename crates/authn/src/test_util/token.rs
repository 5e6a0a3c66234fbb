//! [`TokenBuilder`]: mints one token (any header, claims, algorithm and
//! key), signed, raw, opaque or introspectable.

use super::issuer::TestIssuer;
use super::key::{TestKey, alg_name};
use super::oauth;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum KidChoice {
    Auto,
    None,
    Fixed(String),
}

/// Mints one token; see [`TestIssuer::token`].
#[must_use]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    alg: Algorithm,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    kid: KidChoice,
    signing_key: Option<String>,
    der_ecdsa: bool,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("alg", &self.alg)
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl<'a> TokenBuilder<'a> {
    /// An RS256 token of `issuer` with this header and these claims.
    pub(super) fn new(
        issuer: &'a TestIssuer,
        header: Map<String, Value>,
        claims: Map<String, Value>,
    ) -> Self {
        Self {
            issuer,
            alg: Algorithm::RS256,
            header,
            claims,
            kid: KidChoice::Auto,
            signing_key: None,
            der_ecdsa: false,
        }
    }
}

impl TokenBuilder<'_> {
    /// Signs with this algorithm, using the newest key for it (generated on
    /// first use).
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `aud` (a string or an array).
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// `exp` = now + `secs` (negative for an expired token).
    pub fn expires_in_secs(self, secs: i64) -> Self {
        self.claim("exp", crate::time::now() + secs)
    }

    /// Sets a header member (`alg` and `kid` are set at signing unless given here).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header member.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Omits `kid` from the header.
    pub fn without_kid(mut self) -> Self {
        self.kid = KidChoice::None;
        self
    }

    /// Puts this `kid` in the header, whatever key signs.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = KidChoice::Fixed(kid.to_owned());
        self
    }

    /// Signs with the key `kid` (its kid goes into the header unless
    /// [`kid`](Self::kid) says otherwise).
    pub fn signing_key(mut self, kid: &str) -> Self {
        self.signing_key = Some(kid.to_owned());
        self
    }

    /// Produces an ECDSA signature in ASN.1 DER form instead of the JOSE
    /// fixed form (which validators must reject).
    pub fn der_ecdsa_signature(mut self) -> Self {
        self.der_ecdsa = true;
        self
    }

    /// Binds the token to a DPoP key: `cnf: {"jkt": <its thumbprint>}`.
    pub fn bound_to(self, key: &super::DpopKey) -> Self {
        self.claim("cnf", json!({ "jkt": key.thumbprint() }))
    }

    /// Binds the token to a client certificate (RFC 8705):
    /// `cnf: {"x5t#S256": base64url(SHA-256(der))}`.
    pub fn bound_to_certificate(self, der: &[u8]) -> Self {
        use sha2::Digest as _;
        let x5t = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der));
        self.claim("cnf", json!({ "x5t#S256": x5t }))
    }

    /// Signs and returns the compact token.
    ///
    /// # Panics
    /// If no key can be generated for the algorithm (never with aws-lc-rs).
    pub fn sign(self) -> String {
        let key = self.key();
        let mut header = self.header.clone();
        header
            .entry("alg")
            .or_insert_with(|| json!(alg_name(self.alg)));
        match &self.kid {
            KidChoice::Auto => {
                header.entry("kid").or_insert_with(|| json!(key.kid));
            }
            KidChoice::Fixed(kid) => {
                header.insert("kid".into(), json!(kid));
            }
            KidChoice::None => {}
        }
        let header = serde_json::to_vec(&header).expect("json");
        let claims = serde_json::to_vec(&self.claims).expect("json");
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = key.sign(self.alg, message.as_bytes(), self.der_ecdsa);
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Returns an opaque (non-JWT) token carrying this builder's claims,
    /// known to the issuer's introspection endpoint until `exp` or
    /// [`TestIssuer::revoke`].
    pub fn opaque(self) -> String {
        let token = format!("opaque-{}", oauth::random_id());
        self.issuer.state.oauth.remember(&token, self.claims);
        token
    }

    /// Signs the token and makes it known to the introspection endpoint
    /// (tokens from [`sign`](Self::sign) introspect as inactive).
    pub fn sign_introspectable(self) -> String {
        let state = Arc::clone(&self.issuer.state);
        let claims = self.claims.clone();
        let token = self.sign();
        state.oauth.remember(&token, claims);
        token
    }

    /// Signs an arbitrary header and payload (raw JSON text) with the key
    /// this builder would use: for hostile-input tests.
    pub fn sign_raw(self, header_json: &str, payload_json: &str) -> String {
        let key = self.key();
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(payload_json)
        );
        let signature = key.sign(self.alg, message.as_bytes(), self.der_ecdsa);
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn key(&self) -> Arc<TestKey> {
        let find = |keys: &[Arc<TestKey>]| -> Option<Arc<TestKey>> {
            match &self.signing_key {
                Some(kid) => keys.iter().find(|k| &k.kid == kid).cloned(),
                None => keys
                    .iter()
                    .rev()
                    .find(|k| {
                        let flags = k.flags();
                        flags.published && flags.use_ == "sig" && k.alg == self.alg
                    })
                    .cloned(),
            }
        };
        if let Some(key) = find(&self.issuer.keys()) {
            return key;
        }
        let kid = self.issuer.add_key(self.alg).expect("key generation");
        let keys = self.issuer.keys();
        keys.iter()
            .find(|k| k.kid == kid)
            .cloned()
            .expect("just added")
    }
}
