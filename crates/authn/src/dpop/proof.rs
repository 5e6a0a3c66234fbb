//! One DPoP proof checked against what the request and the token expect:
//! RFC 9449 §4.3, checks 2 to 12 (the single header, check 1, and the
//! replay, are the request's: see `request.rs`).

use super::htu::normalize;
use super::jwk::ProofKey;
use super::options::DpopOptions;
use crate::error::{AuthnError, DpopProofError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// What a proof must say to be accepted for this request and token.
pub(super) struct Expected<'a> {
    /// The request's method.
    pub(super) method: &'a str,
    /// The request's URI, normalised; `None` when it cannot be known
    /// (no `Host`), which no proof matches.
    pub(super) uri: Option<&'a str>,
    /// The access token the proof must hash (`ath`).
    pub(super) access_token: &'a str,
    /// The thumbprint the token is bound to (`cnf.jkt`).
    pub(super) jkt: &'a str,
    /// Our clock, Unix seconds.
    pub(super) now: i64,
}

/// A proof that passed every check but the replay one.
#[derive(Debug)]
pub(super) struct Accepted {
    pub(super) jti: String,
    pub(super) iat: i64,
    pub(super) thumbprint: String,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    jwk: Option<Value>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Payload {
    jti: String,
    htm: String,
    htu: String,
    #[serde(deserialize_with = "numeric_date")]
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A proof whose signature verified with its embedded public key.
pub(super) struct Signed {
    claims: Payload,
    thumbprint: String,
}

/// RFC 9449 §4.3 checks 2 to 7: a JWS of type `dpop+jwt`, an allowed
/// asymmetric `alg`, a public `jwk` that verifies the signature, and the
/// claims every proof has.
pub(super) fn verify_signature(proof: &str, options: &DpopOptions) -> Result<Signed, AuthnError> {
    let bad = AuthnError::InvalidDpopProof;
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(DpopProofError::Malformed));
    };
    let header: Header = decode(h).ok_or(bad(DpopProofError::Malformed))?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(bad(DpopProofError::InvalidType));
    }
    if header.crit.is_some() {
        return Err(bad(DpopProofError::Malformed));
    }
    let alg: Algorithm = header
        .alg
        .parse()
        .map_err(|_| bad(DpopProofError::AlgorithmNotAllowed))?;
    if !options.algorithms.contains(&alg) {
        return Err(bad(DpopProofError::AlgorithmNotAllowed));
    }
    let jwk = header.jwk.as_ref().ok_or(bad(DpopProofError::InvalidKey))?;
    let key = ProofKey::from_jwk(jwk, alg).map_err(bad)?;
    let message = &proof[..h.len() + 1 + p.len()];
    match jsonwebtoken::crypto::verify(s, message.as_bytes(), &key.key, alg) {
        Ok(true) => {}
        _ => return Err(bad(DpopProofError::InvalidSignature)),
    }
    let claims: Payload = decode(p).ok_or(bad(DpopProofError::Malformed))?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(bad(DpopProofError::Malformed));
    }
    Ok(Signed {
        claims,
        thumbprint: key.thumbprint,
    })
}

impl Signed {
    /// Checks 8, 9 and 11: `htm`, `htu` and `iat`.
    fn check_request(
        &self,
        method: &str,
        uri: Option<&str>,
        now: i64,
        options: &DpopOptions,
    ) -> Result<(), AuthnError> {
        let bad = AuthnError::InvalidDpopProof;
        if self.claims.htm != method {
            return Err(bad(DpopProofError::MethodMismatch));
        }
        let htu = normalize(&self.claims.htu);
        if htu.is_none() || htu.as_deref() != uri {
            return Err(bad(DpopProofError::UriMismatch));
        }
        if self.claims.iat < now.saturating_sub(options.max_age) {
            return Err(bad(DpopProofError::Expired));
        }
        if self.claims.iat > now.saturating_add(options.max_skew) {
            return Err(bad(DpopProofError::IssuedInFuture));
        }
        Ok(())
    }
}

/// Checks `proof` against `expected` under `options`.
pub(super) fn check(
    proof: &str,
    expected: &Expected<'_>,
    options: &DpopOptions,
) -> Result<Accepted, AuthnError> {
    let bad = AuthnError::InvalidDpopProof;
    let signed = verify_signature(proof, options)?;
    signed.check_request(expected.method, expected.uri, expected.now, options)?;
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(expected.access_token.as_bytes()));
    if signed.claims.ath.as_deref() != Some(ath.as_str()) {
        return Err(bad(DpopProofError::AccessTokenHashMismatch));
    }
    if signed.thumbprint != expected.jkt {
        return Err(bad(DpopProofError::KeyMismatch));
    }
    if let Some(nonces) = &options.nonces
        && !signed
            .claims
            .nonce
            .as_deref()
            .is_some_and(|n| nonces.accepts(n, expected.now))
    {
        return Err(AuthnError::UseDpopNonce);
    }
    Ok(Accepted {
        jti: signed.claims.jti,
        iat: signed.claims.iat,
        thumbprint: signed.thumbprint,
    })
}

/// The thumbprint of the key of a token request's proof (RFC 9449 §5):
/// checked as a resource server checks one, `POST` to `token_url`, without
/// an access token to hash, with the server's nonce when `options` demand
/// nonces.
#[cfg(feature = "test-util")]
pub(crate) fn token_request_jkt(
    proof: &str,
    token_url: &str,
    options: &DpopOptions,
) -> Result<String, AuthnError> {
    let signed = verify_signature(proof, options)?;
    let uri = normalize(token_url);
    let now = crate::time::now();
    signed.check_request("POST", uri.as_deref(), now, options)?;
    if let Some(nonces) = &options.nonces
        && !signed
            .claims
            .nonce
            .as_deref()
            .is_some_and(|n| nonces.accepts(n, now))
    {
        return Err(AuthnError::UseDpopNonce);
    }
    Ok(signed.thumbprint)
}

/// The nonce a server demanding them hands out now (`DPoP-Nonce`).
#[cfg(feature = "test-util")]
pub(crate) fn current_nonce(options: &DpopOptions) -> Option<http::HeaderValue> {
    options
        .nonces
        .as_ref()
        .map(|nonces| nonces.current(crate::time::now()))
}

/// A NumericDate: integer or not (RFC 7519 §2), to the second below.
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(d)?;
    if let Some(secs) = number.as_i64() {
        return Ok(secs);
    }
    match number.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        Some(secs) if secs.is_finite() && secs.abs() < 1e15 => Ok(secs.floor() as i64),
        _ => Err(serde::de::Error::custom("iat out of range")),
    }
}

fn decode<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}
