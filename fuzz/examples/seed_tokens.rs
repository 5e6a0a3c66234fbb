//! Writes the `jwt_validate` seed corpus: Authorization headers with tokens
//! signed by the fixed keys (valid ones and near misses).
//!
//! Run with `cargo +nightly run --example seed_tokens -- corpus/jwt_validate`.

use serde_json::json;
use tessera_fuzz::{AUDIENCE, ENCRYPTION_KID, ISSUER, SIGNING_KID, keys, sign};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus/jwt_validate".to_owned());
    std::fs::create_dir_all(&dir)?;
    let k = keys();
    // Expires in 2100: the seeds stay valid.
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "exp": 4_102_444_800_i64,
        "iat": 1_700_000_000, "scope": "read write", "roles": ["admin"]});
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": SIGNING_KID});
    let valid = sign(&k.signing, &header, &claims);
    let seeds = [
        ("valid", format!("Bearer {valid}")),
        ("valid-lowercase-scheme", format!("bearer {valid}")),
        (
            "valid-at-jwt",
            format!(
                "Bearer {}",
                sign(
                    &k.signing,
                    &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": SIGNING_KID}),
                    &claims
                )
            ),
        ),
        (
            "valid-no-kid",
            format!(
                "Bearer {}",
                sign(&k.signing, &json!({"alg": "EdDSA"}), &claims)
            ),
        ),
        (
            "encryption-key",
            format!(
                "Bearer {}",
                sign(
                    &k.encryption,
                    &json!({"alg": "EdDSA", "kid": ENCRYPTION_KID}),
                    &claims
                )
            ),
        ),
        (
            "wrong-audience",
            format!(
                "Bearer {}",
                sign(
                    &k.signing,
                    &header,
                    &json!({"iss": ISSUER, "aud": ["other", "x"], "exp": 4_102_444_800_i64})
                )
            ),
        ),
        (
            "expired",
            format!(
                "Bearer {}",
                sign(
                    &k.signing,
                    &header,
                    &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": 1_000_000_000, "nbf": 999_999_999})
                )
            ),
        ),
        (
            "crit",
            format!(
                "Bearer {}",
                sign(
                    &k.signing,
                    &json!({"alg": "EdDSA", "kid": SIGNING_KID, "crit": ["b64"], "b64": false}),
                    &claims
                )
            ),
        ),
        (
            "alg-none",
            format!("Bearer {}.", valid.rsplit_once('.').map_or("", |(i, _)| i)),
        ),
        ("basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("dpop", format!("DPoP {valid}")),
    ];
    for (name, value) in seeds {
        std::fs::write(format!("{dir}/{name}"), value)?;
    }
    Ok(())
}
