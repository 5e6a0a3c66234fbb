//! The validated-token cache, on by default: what it serves, and when it
//! must stop serving (key rotation and removal, `exp`, `nbf`, another
//! issuer configuration). Its bounds are tested in `src/cache.rs`.

mod common;

use common::{discovery_validator, trusted};
use serde_json::Value;
use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{Algorithm, AuthnError, JwksCache, JwksOptions, JwtValidator, Principal};

/// A validator over an explicit `JwksCache`, so tests refresh it at will.
async fn with_cache(idp: &TestIssuer) -> (JwtValidator, JwksCache) {
    let cache = JwksCache::new(
        &idp.jwks_url(),
        JwksOptions::default().refresh_cooldown(Duration::ZERO),
    )
    .unwrap();
    let validator = JwtValidator::builder()
        .issuer(trusted(idp).jwks_cache(cache.clone()))
        .build()
        .unwrap();
    validator.warm_up().await.unwrap();
    (validator, cache)
}

/// A validator by discovery that grants no clock leeway.
fn without_leeway(idp: &TestIssuer) -> JwtValidator {
    JwtValidator::builder()
        .issuer(trusted(idp).discovery())
        .leeway(Duration::ZERO)
        .build()
        .unwrap()
}

/// Whether two principals are one cache entry (the same allocation).
fn same(a: &Principal, b: &Principal) -> bool {
    std::ptr::eq(a.claims(), b.claims())
}

#[tokio::test]
async fn validated_tokens_are_cached_by_default() {
    let idp = TestIssuer::start().await.unwrap();
    let v = discovery_validator(&idp);
    let token = idp.token().sign();
    let first = v.validate(&token).await.unwrap();
    let again = v.validate_now(&token).unwrap().unwrap();
    assert!(same(&first, &again), "the second call is a cache hit");
    let clone = v.clone().validate_now(&token).unwrap().unwrap();
    assert!(same(&first, &clone), "clones share the cache");
}

#[tokio::test]
async fn without_token_cache_every_call_validates() {
    let idp = TestIssuer::start().await.unwrap();
    let v = JwtValidator::builder()
        .issuer(trusted(&idp).discovery())
        .without_token_cache()
        .build()
        .unwrap();
    let token = idp.token().sign();
    let first = v.validate(&token).await.unwrap();
    let again = v.validate(&token).await.unwrap();
    assert!(!same(&first, &again));
    let zero = JwtValidator::builder()
        .issuer(trusted(&idp).discovery())
        .cache_validated_tokens(0)
        .build()
        .unwrap();
    let first = zero.validate(&token).await.unwrap();
    assert!(!same(&first, &zero.validate(&token).await.unwrap()));
}

#[tokio::test]
async fn a_rotation_keeps_serving_tokens_of_keys_still_listed() {
    let idp = TestIssuer::start().await.unwrap();
    let (v, cache) = with_cache(&idp).await;
    let old = idp.token().sign();
    let first = v.validate(&old).await.unwrap();
    idp.rotate(Algorithm::RS256).unwrap();
    cache.refresh_now().await.unwrap();
    assert_eq!(cache.keys().len(), 2);
    let again = v.validate(&old).await.unwrap();
    assert!(same(&first, &again), "adding a key drops nothing");
    let new = idp.token().sign();
    assert!(v.validate(&new).await.is_ok());
}

#[tokio::test]
async fn a_key_dropped_by_a_refresh_stops_its_cached_tokens_at_once() {
    let idp = TestIssuer::start().await.unwrap();
    let (v, cache) = with_cache(&idp).await;
    let old_kid = cache.keys().kids().next().unwrap().to_owned();
    let old = idp.token().sign();
    v.validate(&old).await.unwrap();
    let new_kid = idp.rotate(Algorithm::RS256).unwrap();
    cache.refresh_now().await.unwrap();
    let new = idp.token().sign();
    let first_new = v.validate(&new).await.unwrap();

    // The old key is compromised: the issuer stops publishing it.
    idp.retire(&old_kid);
    cache.refresh_now().await.unwrap();
    assert_eq!(v.validate(&old).await.unwrap_err(), AuthnError::UnknownKey);
    assert_eq!(v.validate(&old).await.unwrap_err(), AuthnError::UnknownKey);
    // Tokens of the key still listed are checked again once, then cached.
    let again_new = v.validate(&new).await.unwrap();
    assert!(
        !same(&first_new, &again_new),
        "verified again after the drop"
    );
    let third_new = v.validate_now(&new).unwrap().unwrap();
    assert!(same(&again_new, &third_new));
    assert!(new_kid != old_kid);
}

#[tokio::test]
async fn a_refresh_caused_by_an_unknown_kid_drops_retired_keys_too() {
    let idp = TestIssuer::start().await.unwrap();
    let (v, cache) = with_cache(&idp).await;
    let old = idp.token().sign();
    v.validate(&old).await.unwrap();
    let retired = cache.keys().kids().next().unwrap().to_owned();
    idp.rotate(Algorithm::RS256).unwrap();
    idp.retire(&retired);
    // A token of the new key makes the validator refetch the key set.
    assert!(v.validate(&idp.token().sign()).await.is_ok());
    assert_eq!(v.validate(&old).await.unwrap_err(), AuthnError::UnknownKey);
}

#[tokio::test]
async fn a_key_replaced_under_its_kid_stops_its_cached_tokens() {
    let idp = TestIssuer::start().await.unwrap();
    let (v, cache) = with_cache(&idp).await;
    let old = idp.token().sign();
    v.validate(&old).await.unwrap();
    let old_kid = cache.keys().kids().next().unwrap().to_owned();
    // Other key material published under the old kid.
    idp.rotate(Algorithm::RS256).unwrap();
    let mut jwks = idp.jwks();
    let keys = jwks["keys"].as_array_mut().unwrap();
    let mut other = keys.pop().unwrap();
    other["kid"] = Value::String(old_kid);
    *keys = vec![other];
    idp.serve_raw_jwks(Some(jwks.to_string().into_bytes()));
    cache.refresh_now().await.unwrap();
    assert_eq!(
        v.validate(&old).await.unwrap_err(),
        AuthnError::InvalidSignature
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_cached_tokens() {
    let idp = TestIssuer::start().await.unwrap();
    let (v, cache) = with_cache(&idp).await;
    let token = idp.token().sign();
    let first = v.validate(&token).await.unwrap();
    idp.fail_jwks(Some(500));
    assert!(cache.refresh_now().await.is_err());
    let again = v.validate_now(&token).unwrap().unwrap();
    assert!(same(&first, &again), "the last good key set still stands");
}

#[tokio::test]
async fn tokens_are_never_served_past_exp() {
    let idp = TestIssuer::start().await.unwrap();
    let v = without_leeway(&idp);
    let token = idp.token().expires_in_secs(1).sign();
    v.validate(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(v.validate(&token).await.unwrap_err(), AuthnError::Expired);
    assert_eq!(v.validate_now(&token).unwrap_err(), AuthnError::Expired);
}

#[tokio::test]
async fn tokens_accepted_before_nbf_thanks_to_the_leeway_are_not_cached() {
    let idp = TestIssuer::start().await.unwrap();
    let v = discovery_validator(&idp);
    let nbf = tessera_now() + 30;
    let early = idp.token().claim("nbf", nbf).sign();
    let first = v.validate(&early).await.unwrap();
    let again = v.validate(&early).await.unwrap();
    assert!(
        !same(&first, &again),
        "validated in full each time until nbf"
    );
    let strict = without_leeway(&idp);
    assert_eq!(
        strict.validate(&early).await.unwrap_err(),
        AuthnError::NotYetValid
    );
}

#[tokio::test]
async fn another_issuer_configuration_never_sees_cached_results() {
    let idp = TestIssuer::start().await.unwrap();
    let (v, cache) = with_cache(&idp).await;
    let token = idp.token().sign();
    v.validate(&token).await.unwrap();
    // The same key source, another audience: a new validator, a new cache.
    let other_audience = JwtValidator::builder()
        .issuer(
            tessera_authn::Issuer::new(idp.issuer())
                .audience("another-api")
                .jwks_cache(cache.clone()),
        )
        .build()
        .unwrap();
    assert_eq!(
        other_audience.validate(&token).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
    let other_algorithms = JwtValidator::builder()
        .issuer(
            trusted(&idp)
                .algorithms([Algorithm::ES256])
                .jwks_cache(cache.clone()),
        )
        .build()
        .unwrap();
    assert_eq!(
        other_algorithms.validate(&token).await.unwrap_err(),
        AuthnError::AlgorithmNotAllowed
    );
    let strict_types = JwtValidator::builder()
        .issuer(trusted(&idp).jwks_cache(cache))
        .token_types(tessera_authn::TokenTypes::Rfc9068)
        .build()
        .unwrap();
    assert_eq!(
        strict_types.validate(&token).await.unwrap_err(),
        AuthnError::InvalidType
    );
}

fn tessera_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}
