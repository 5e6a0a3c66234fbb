//! Setups the integration tests share: validators trusting a `TestIssuer`.

// Each test crate uses some of these helpers, not all.
#![allow(dead_code)]

use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{Issuer, JwksOptions, JwtValidator};

/// The test issuer as a trusted issuer: its `iss` and audience; the key
/// source is the caller's choice.
pub(crate) fn trusted(idp: &TestIssuer) -> Issuer {
    Issuer::new(idp.issuer()).audience(idp.audience())
}

/// A validator trusting just `issuer`, with the builder's defaults.
pub(crate) fn validator_for(issuer: Issuer) -> JwtValidator {
    JwtValidator::builder().issuer(issuer).build().unwrap()
}

/// A validator finding the test issuer's keys by discovery, refetching
/// them at most every 100 ms (so rotation tests run fast).
pub(crate) fn discovery_validator(idp: &TestIssuer) -> JwtValidator {
    JwtValidator::builder()
        .issuer(trusted(idp).discovery())
        .jwks_options(JwksOptions::default().refresh_cooldown(Duration::from_millis(100)))
        .build()
        .unwrap()
}
