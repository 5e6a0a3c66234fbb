//! RFC 7638 JWK thumbprints: what a DPoP-bound token's `cnf.jkt` names.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The RFC 7638 thumbprint of a public JWK (RSA, EC or OKP), or `None`
/// when it is not one.
#[must_use]
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let canonical = match text("kty")? {
        "RSA" => canonical(&[("e", text("e")?), ("kty", "RSA"), ("n", text("n")?)]),
        "EC" => canonical(&[
            ("crv", text("crv")?),
            ("kty", "EC"),
            ("x", text("x")?),
            ("y", text("y")?),
        ]),
        "OKP" => canonical(&[("crv", text("crv")?), ("kty", "OKP"), ("x", text("x")?)]),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The required members in lexicographic order, no whitespace (RFC 7638 §3).
pub(crate) fn canonical(members: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        out.push_str(&Value::from(*value).to_string());
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }
}
