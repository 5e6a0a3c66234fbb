//! Arbitrary `Authorization` header values through the layer's token
//! extraction and the validator, with a fixed key set: never a panic, and
//! nothing accepted unless the signing key really signed it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tessera_authn::fuzzing::authorization_header;
use tessera_authn::{Issuer, JwtValidator, KeySet};
use tessera_fuzz::{AUDIENCE, ISSUER, jwks, signed_by_signing_key};

fn validator() -> &'static JwtValidator {
    static VALIDATOR: OnceLock<JwtValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let keys = KeySet::from_jwks(jwks().as_bytes()).expect("the fixed JWKS parses");
        JwtValidator::builder()
            .issuer(Issuer::new(ISSUER).audience(AUDIENCE).keys(keys))
            .build()
            .expect("validator")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(outcome) = authorization_header(validator(), data) else {
        return;
    };
    if let Ok(Some(principal)) = outcome {
        let token = principal.bearer_token();
        assert!(
            signed_by_signing_key(token),
            "accepted a token the signing key did not sign: {token:?}"
        );
        assert_eq!(principal.issuer(), ISSUER);
        assert!(principal.claims().aud.contains(AUDIENCE));
    }
});
