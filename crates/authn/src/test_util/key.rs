//! The test issuer's keys: generation for every JOSE algorithm, signing,
//! and publication as JWK or PEM.

use super::issuer::TestIssuerError;
use super::server::lock;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A signing key of the test issuer.
pub(super) enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec {
        fixed: EcdsaKeyPair,
        der: EcdsaKeyPair,
        crv: &'static str,
    },
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A key of the test issuer, and how it is published.
pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) material: KeyMaterial,
    pub(super) flags: Mutex<Flags>,
}

/// How a key is published.
#[derive(Clone, Copy)]
pub(super) struct Flags {
    pub(super) publish_alg: bool,
    pub(super) use_: &'static str,
    pub(super) published: bool,
}

impl TestKey {
    pub(super) fn generate(kid: String, alg: Algorithm) -> Result<Self, TestIssuerError> {
        let material = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyMaterial::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| TestIssuerError::KeyGen)?,
            ),
            Algorithm::ES256 | Algorithm::ES384 => {
                let (fixed_alg, der_alg, crv) = if alg == Algorithm::ES256 {
                    (
                        &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                        "P-256",
                    )
                } else {
                    (
                        &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                        &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                        "P-384",
                    )
                };
                let rng = SystemRandom::new();
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(fixed_alg, &rng)
                    .map_err(|_| TestIssuerError::KeyGen)?;
                KeyMaterial::Ec {
                    fixed: EcdsaKeyPair::from_pkcs8(fixed_alg, pkcs8.as_ref())
                        .map_err(|_| TestIssuerError::KeyGen)?,
                    der: EcdsaKeyPair::from_pkcs8(der_alg, pkcs8.as_ref())
                        .map_err(|_| TestIssuerError::KeyGen)?,
                    crv,
                }
            }
            Algorithm::EdDSA => {
                KeyMaterial::Ed(Ed25519KeyPair::generate().map_err(|_| TestIssuerError::KeyGen)?)
            }
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let mut secret = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut secret).map_err(|_| TestIssuerError::KeyGen)?;
                KeyMaterial::Hmac(secret)
            }
            _ => return Err(TestIssuerError::KeyGen),
        };
        Ok(Self {
            kid,
            alg,
            material,
            flags: Mutex::new(Flags {
                publish_alg: true,
                use_: "sig",
                published: true,
            }),
        })
    }

    pub(super) fn flags(&self) -> Flags {
        *lock(&self.flags)
    }

    pub(super) fn jwk(&self) -> Option<Value> {
        let flags = self.flags();
        if !flags.published {
            return None;
        }
        let mut jwk = match &self.material {
            KeyMaterial::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                })
            }
            KeyMaterial::Ec { fixed, crv, .. } => {
                let point = fixed.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..=len]),
                    "y": URL_SAFE_NO_PAD.encode(&point[len + 1..]),
                })
            }
            KeyMaterial::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
            KeyMaterial::Hmac(_) => return None,
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!(flags.use_);
        if flags.publish_alg {
            jwk["alg"] = json!(alg_name(self.alg));
        }
        Some(jwk)
    }

    pub(super) fn sign(&self, alg: Algorithm, message: &[u8], der_ecdsa: bool) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut out)
                    .expect("rsa signing");
                out
            }
            KeyMaterial::Ec { fixed, der, .. } => {
                let pair = if der_ecdsa { der } else { fixed };
                pair.sign(&rng, message)
                    .expect("ecdsa signing")
                    .as_ref()
                    .to_vec()
            }
            KeyMaterial::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            KeyMaterial::Hmac(secret) => {
                let algorithm = match alg {
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => aws_lc_rs::hmac::HMAC_SHA256,
                };
                let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
                aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
            }
        }
    }

    pub(super) fn public_pem(&self) -> Option<String> {
        use aws_lc_rs::encoding::AsDer as _;
        let der: Vec<u8> = match &self.material {
            KeyMaterial::Rsa(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            KeyMaterial::Ec { fixed, .. } => fixed.public_key().as_der().ok()?.as_ref().to_vec(),
            KeyMaterial::Ed(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            KeyMaterial::Hmac(_) => return None,
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        Some(format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ))
    }
}

/// The JOSE name of an algorithm.
#[must_use]
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        _ => "EdDSA",
    }
}

/// The JWKS document publishing these keys.
pub(super) fn jwks_document(keys: &[Arc<TestKey>]) -> Value {
    let keys: Vec<Value> = keys.iter().filter_map(|k| k.jwk()).collect();
    json!({ "keys": keys })
}
