//! What the fuzz targets share: a fixed key set the fuzzer cannot sign with,
//! an independent signature check, and a runtime for the async entry points.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use std::future::Future;
use std::sync::OnceLock;

/// The issuer tokens are validated for.
pub const ISSUER: &str = "https://idp.example";
/// The audience they must name.
pub const AUDIENCE: &str = "api";
/// The signing key's kid.
pub const SIGNING_KID: &str = "fuzz-sig";
/// A key of the set declared `use: enc`: what it signs must never validate.
pub const ENCRYPTION_KID: &str = "fuzz-enc";

/// Keys derived from fixed seeds, so every run (and every seed token in the
/// corpus) uses the same ones. The fuzzer sees only signatures, never the
/// seeds: it cannot make a new valid one.
pub struct Keys {
    /// Signs the tokens that should validate.
    pub signing: Ed25519KeyPair,
    /// Listed with `use: enc`.
    pub encryption: Ed25519KeyPair,
}

/// The fixed keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        signing: Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("ed25519 seed"),
        encryption: Ed25519KeyPair::from_seed_unchecked(&[9; 32]).expect("ed25519 seed"),
    })
}

/// The JWKS document of the fixed keys.
pub fn jwks() -> String {
    let k = keys();
    let x = |pair: &Ed25519KeyPair| URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": ENCRYPTION_KID, "use": "enc", "x": x(&k.encryption)},
        {"kty": "OKP", "crv": "Ed25519", "kid": SIGNING_KID, "use": "sig", "alg": "EdDSA", "x": x(&k.signing)},
    ]})
    .to_string()
}

/// A compact JWS of `header` and `claims` signed with `pair`.
pub fn sign(
    pair: &Ed25519KeyPair,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pair.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// Whether `token` is a JWS whose signature verifies under the signing key,
/// checked here independently of the validator (base64 read leniently: any
/// encoding the validator might accept counts).
pub fn signed_by_signing_key(token: &str) -> bool {
    let lenient = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let Some((input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature) = lenient.decode(signature) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, keys().signing.public_key().as_ref())
        .verify(input.as_bytes(), &signature)
        .is_ok()
}

/// Runs a future to completion on a runtime shared by all iterations.
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("tokio runtime")
        })
        .block_on(future)
}

/// The lines of `data`, split on `\n`.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}
