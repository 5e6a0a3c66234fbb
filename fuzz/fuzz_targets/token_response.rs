//! Arbitrary token-endpoint responses (client credentials and RFC 8693
//! token exchange) through parsing and the token cache: errors, no panic,
//! and a cached token renews before it expires, within a year.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_authn::fuzzing::{
    CachedToken, MAX_TOKEN_LIFETIME, client_credentials_response, token_exchange_response,
};

fn check(cached: &CachedToken) {
    assert!(cached.refresh_after <= cached.expires_after);
    assert!(cached.expires_after <= MAX_TOKEN_LIFETIME);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cached) = client_credentials_response(data) {
        check(&cached);
    }
    if let Ok(cached) = token_exchange_response(data) {
        check(&cached);
    }
});
