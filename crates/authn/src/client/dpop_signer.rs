//! [`DpopSigner`]: the key pair a client proves it holds with every request
//! (RFC 9449), and the proofs it signs.

use super::dpop_nonces::NonceMemory;
use super::error::ClientError;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use url::Url;

/// A DPoP key pair (RFC 9449) held by a client: tokens bound to it
/// (`cnf.jkt` = its [thumbprint](Self::thumbprint)) are only accepted with a
/// proof it signed for that very request.
///
/// Give it to [`ClientCredentialsBuilder::dpop`](super::ClientCredentialsBuilder::dpop):
/// token requests then carry a proof, the tokens come back bound
/// (`token_type: DPoP`), and [`InjectTokenLayer`](super::InjectTokenLayer)
/// and [`AuthorizedClient`](super::AuthorizedClient) send each request with
/// `Authorization: DPoP` and a fresh proof (`htm`, `htu`, `ath`, and the
/// nonce the server asked for last).
///
/// ES256 (the algorithm every server supports), ES384 and EdDSA. Cheap to
/// clone: clones share the key and the servers' nonces. `Debug` shows the
/// algorithm and thumbprint, never the private key.
///
/// ```
/// use tessera_authn::Algorithm;
/// use tessera_authn::client::DpopSigner;
///
/// let signer = DpopSigner::generate(Algorithm::ES256)?;
/// let proof = signer.proof("GET", "https://api.example/orders?page=2", Some("eyJ..."), None)?;
/// assert_eq!(proof.split('.').count(), 3);
/// assert_eq!(signer.thumbprint().len(), 43); // base64url of SHA-256
/// # Ok::<(), tessera_authn::client::ClientError>(())
/// ```
#[derive(Clone)]
pub struct DpopSigner {
    inner: Arc<Inner>,
}

struct Inner {
    alg: Algorithm,
    key: SigningKey,
    /// The proof header, base64url: `typ`, `alg` and the public `jwk` never change.
    header: String,
    thumbprint: String,
    jwk: Map<String, Value>,
    nonces: NonceMemory,
}

enum SigningKey {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl fmt::Debug for DpopSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopSigner")
            .field("alg", &self.inner.alg)
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

fn unsupported(alg: Algorithm) -> ClientError {
    ClientError::Config(format!("DPoP keys are ES256, ES384 or EdDSA, not {alg:?}"))
}

fn ec_algorithm(alg: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

impl DpopSigner {
    /// A fresh key pair for `alg` (ES256, ES384 or EdDSA). Tokens bound to
    /// it are useless to anyone else, and to this process after it ends.
    pub fn generate(alg: Algorithm) -> Result<Self, ClientError> {
        let key = if let Some(ec) = ec_algorithm(alg) {
            SigningKey::Ec(EcdsaKeyPair::generate(ec).map_err(|_| keygen())?)
        } else if alg == Algorithm::EdDSA {
            SigningKey::Ed(Ed25519KeyPair::generate().map_err(|_| keygen())?)
        } else {
            return Err(unsupported(alg));
        };
        Ok(Self::new(alg, key))
    }

    /// The key pair in `pkcs8` (DER), for `alg`: a key kept across restarts,
    /// so tokens bound to it stay usable.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, ClientError> {
        let invalid = |_| ClientError::Config(format!("not a PKCS#8 {alg:?} key pair"));
        let key = if let Some(ec) = ec_algorithm(alg) {
            SigningKey::Ec(EcdsaKeyPair::from_pkcs8(ec, pkcs8).map_err(invalid)?)
        } else if alg == Algorithm::EdDSA {
            SigningKey::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(invalid)?)
        } else {
            return Err(unsupported(alg));
        };
        Ok(Self::new(alg, key))
    }

    fn new(alg: Algorithm, key: SigningKey) -> Self {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (jwk, canonical) = match &key {
            SigningKey::Ec(pair) => {
                // An uncompressed point: 0x04, x, y.
                let point = &pair.public_key().as_ref()[1..];
                let (x, y) = point.split_at(point.len() / 2);
                let crv = if alg == Algorithm::ES256 {
                    "P-256"
                } else {
                    "P-384"
                };
                let (x, y) = (b64(x), b64(y));
                let canonical = crate::thumbprint::canonical(&[
                    ("crv", crv),
                    ("kty", "EC"),
                    ("x", &x),
                    ("y", &y),
                ]);
                (
                    json!({ "kty": "EC", "crv": crv, "x": x, "y": y }),
                    canonical,
                )
            }
            SigningKey::Ed(pair) => {
                let x = b64(pair.public_key().as_ref());
                let canonical =
                    crate::thumbprint::canonical(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", &x)]);
                (json!({ "kty": "OKP", "crv": "Ed25519", "x": x }), canonical)
            }
        };
        let alg_name = match alg {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            _ => "EdDSA",
        };
        let header = json!({ "typ": "dpop+jwt", "alg": alg_name, "jwk": jwk });
        let Value::Object(jwk) = jwk else {
            unreachable!("built as an object above")
        };
        Self {
            inner: Arc::new(Inner {
                alg,
                key,
                header: b64(header.to_string().as_bytes()),
                thumbprint: b64(&Sha256::digest(canonical.as_bytes())),
                jwk,
                nonces: NonceMemory::default(),
            }),
        }
    }

    /// The algorithm proofs are signed with.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.inner.alg
    }

    /// The RFC 7638 thumbprint of the public key: the `cnf.jkt` of the
    /// tokens bound to this key.
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public key as a JWK, as proofs carry it in their header.
    #[must_use]
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.inner.jwk
    }

    /// A proof for a `method` request to `url` (its query and fragment are
    /// left out of `htu`), issued now with a random `jti`; `ath` hashes
    /// `access_token` when given, `nonce` is the server's `DPoP-Nonce`.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ClientError> {
        let htu = htu(url)?;
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| keygen())?;
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "htm": method,
            "htu": htu,
            "iat": crate::time::now(),
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let message = format!(
            "{}.{}",
            self.inner.header,
            URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
        );
        let signature = match &self.inner.key {
            SigningKey::Ec(pair) => pair
                .sign(&SystemRandom::new(), message.as_bytes())
                .map_err(|_| ClientError::Config("signing the DPoP proof failed".into()))?
                .as_ref()
                .to_vec(),
            SigningKey::Ed(pair) => pair.sign(message.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The servers' nonces this key's proofs echo.
    pub(super) fn nonces(&self) -> &NonceMemory {
        &self.inner.nonces
    }
}

fn keygen() -> ClientError {
    ClientError::Config("the system's random generator failed".into())
}

/// `url` without query and fragment, as `htu` names it; only absolute
/// http(s) URLs qualify.
fn htu(url: &str) -> Result<String, ClientError> {
    let mut url = Url::parse(url)
        .map_err(|_| ClientError::Config("a DPoP proof needs the request's absolute URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::Config(
            "a DPoP proof needs an http(s) URL with a host".into(),
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.into())
}

/// Token requests made with the key carry a proof by it, with the last
/// nonce the server gave; its answers' nonces are kept for the next proof.
impl crate::endpoint::PostProof for DpopSigner {
    fn header(
        &self,
        url: &url::Url,
    ) -> Result<(http::HeaderName, http::HeaderValue), crate::endpoint::PostError> {
        let nonce = self.nonces().get(url.as_str());
        self.proof("POST", url.as_str(), None, nonce.as_deref())
            .ok()
            .and_then(|proof| http::HeaderValue::try_from(proof).ok())
            .map(|proof| (crate::dpop::DPOP, proof))
            .ok_or_else(|| {
                crate::endpoint::PostError::Body("the DPoP proof could not be made".into())
            })
    }

    fn answered(&self, url: &url::Url, headers: &http::HeaderMap) {
        self.nonces().remember(url.as_str(), headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(proof: &str, i: usize) -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(proof.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn proofs_say_what_rfc_9449_asks() {
        for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            let signer = DpopSigner::generate(alg).unwrap();
            let proof = signer
                .proof(
                    "POST",
                    "https://api.example:8443/a/b?x=1#f",
                    Some("tok"),
                    Some("n1"),
                )
                .unwrap();
            let header = part(&proof, 0);
            assert_eq!(header["typ"], "dpop+jwt");
            assert!(header["jwk"].get("d").is_none(), "no private member");
            let jwk = header["jwk"].as_object().unwrap();
            assert_eq!(
                crate::thumbprint::jwk_thumbprint(jwk).as_deref(),
                Some(signer.thumbprint())
            );
            let claims = part(&proof, 1);
            assert_eq!(claims["htm"], "POST");
            assert_eq!(claims["htu"], "https://api.example:8443/a/b");
            assert_eq!(claims["nonce"], "n1");
            assert_eq!(
                claims["ath"],
                URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok"))
            );
            let again = signer
                .proof("POST", "https://api.example/", None, None)
                .unwrap();
            assert_ne!(part(&again, 1)["jti"], claims["jti"], "a fresh jti");
            assert!(part(&again, 1).get("ath").is_none());
        }
    }

    #[test]
    fn keys_survive_a_round_trip_through_pkcs8() {
        let rng = SystemRandom::new();
        let der =
            EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let a = DpopSigner::from_pkcs8(Algorithm::ES256, der.as_ref()).unwrap();
        let b = DpopSigner::from_pkcs8(Algorithm::ES256, der.as_ref()).unwrap();
        assert_eq!(a.thumbprint(), b.thumbprint());
        assert!(DpopSigner::from_pkcs8(Algorithm::ES384, der.as_ref()).is_err());
        assert!(DpopSigner::from_pkcs8(Algorithm::ES256, b"junk").is_err());
    }

    #[test]
    fn symmetric_and_rsa_algorithms_and_bad_urls_are_refused() {
        for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::PS256] {
            assert!(matches!(
                DpopSigner::generate(alg),
                Err(ClientError::Config(_))
            ));
        }
        let signer = DpopSigner::generate(Algorithm::ES256).unwrap();
        for url in ["/relative", "ftp://host/x", "not a url"] {
            assert!(signer.proof("GET", url, None, None).is_err(), "{url}");
        }
        assert!(!format!("{signer:?}").contains("d\""));
    }
}
