#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};
use tessera_authn::{Claims, Principal};

pub const ISSUER: &str = "https://idp.example";
pub const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLWJvZHk.c2lnbmF0dXJl";

/// Claims with the registered claims filled in and `extra` merged on top.
pub fn claims(extra: Value) -> Claims {
    let mut claims = json!({ "iss": ISSUER, "sub": "alice", "exp": 1_900_000_000 });
    if let (Value::Object(c), Value::Object(extra)) = (&mut claims, extra) {
        c.extend(extra);
    }
    serde_json::from_value(claims).expect("valid test claims")
}

pub fn principal(extra: Value) -> Principal {
    Principal::new(ISSUER, claims(extra), TOKEN)
}
