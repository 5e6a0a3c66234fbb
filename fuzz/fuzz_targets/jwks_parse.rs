//! Arbitrary JWKS response bodies, in arbitrary chunks, through the key
//! cache's size limit and key-count cap and the JWKS parser: errors, no
//! panic, and the caps hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_authn::fuzzing::jwks_response;
use tessera_authn::keys::DEFAULT_MAX_KEYS;
use tessera_authn::{JwksOptions, KeyError, KeySet};

const MAX_BYTES: usize = 16 * 1024;
const MAX_KEYS: usize = 8;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size the body arrives in.
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let options = JwksOptions::default()
        .max_bytes(MAX_BYTES)
        .max_keys(MAX_KEYS);
    match jwks_response(body.chunks(usize::from(chunk).max(1)), &options) {
        Ok(keys) => {
            assert!(body.len() <= MAX_BYTES, "{} bytes accepted", body.len());
            assert!(keys.len() <= MAX_KEYS, "{} keys accepted", keys.len());
            assert!(keys.usable_len() <= keys.len());
        }
        Err(KeyError::TooLarge { limit }) => {
            assert_eq!(limit, MAX_BYTES);
            assert!(body.len() > MAX_BYTES);
        }
        Err(_) => assert!(body.len() <= MAX_BYTES),
    }
    // The static key source's default cap.
    if let Ok(keys) = KeySet::from_jwks(body) {
        assert!(keys.len() <= DEFAULT_MAX_KEYS);
    }
});
