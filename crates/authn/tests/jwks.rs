//! The remote key source: discovery, caching, rotation, outages, floods and
//! hostile documents, against a real HTTP issuer.

use std::sync::Arc;
use std::time::Duration;
use tessera_authn::jwks::OidcDiscovery;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{Algorithm, AuthnError, Issuer, JwksCache, JwksOptions, JwtValidator, KeySet};

fn validator_with(idp: &TestIssuer, options: JwksOptions) -> JwtValidator {
    JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .discovery(),
        )
        .jwks_options(options)
        .build()
        .unwrap()
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_keys_are_fetched_once() {
    let idp = TestIssuer::start().await.unwrap();
    let v = validator_with(&idp, JwksOptions::default());
    for _ in 0..20 {
        assert!(v.validate(&idp.token().sign()).await.is_ok());
    }
    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_discovery_issuer(Some("https://impostor.example"));
    let v = validator_with(&idp, JwksOptions::default());
    assert!(v.warm_up().await.is_err());
    assert_eq!(
        v.validate(&idp.token().sign()).await.unwrap_err(),
        AuthnError::KeysUnavailable
    );
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
}

#[tokio::test]
async fn a_rotated_key_validates_within_seconds() {
    let idp = TestIssuer::start().await.unwrap();
    let v = validator_with(
        &idp,
        JwksOptions::default().refresh_cooldown(Duration::from_millis(500)),
    );
    v.warm_up().await.unwrap();
    assert!(v.validate(&idp.token().sign()).await.is_ok());
    let new_kid = idp.rotate(Algorithm::RS256).unwrap();
    let token = idp.token().sign();
    assert!(token.len() > 10 && !new_kid.is_empty());
    // Within the cooldown right after a fetch the new kid may be refused...
    let started = std::time::Instant::now();
    loop {
        match v.validate(&token).await {
            Ok(_) => break,
            Err(AuthnError::UnknownKey) if started.elapsed() < Duration::from_secs(3) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("rotated key not accepted: {e}"),
        }
    }
    // ...and once the cooldown has passed, it is accepted.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(idp.jwks_fetches() <= 3);
}

#[tokio::test]
async fn unknown_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let idp = TestIssuer::start().await.unwrap();
    let v = validator_with(
        &idp,
        JwksOptions::default().refresh_cooldown(Duration::from_millis(300)),
    );
    v.warm_up().await.unwrap();
    let before = idp.jwks_fetches();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let tokens: Vec<String> = (0..300)
        .map(|i| idp.token().kid(&format!("random-{i}")).sign())
        .collect();
    let v = Arc::new(v);
    let mut tasks = Vec::new();
    for token in tokens {
        let v = Arc::clone(&v);
        tasks.push(tokio::spawn(async move { v.validate(&token).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), AuthnError::UnknownKey);
    }
    assert_eq!(
        idp.jwks_fetches() - before,
        1,
        "single flight: one fetch for the whole flood"
    );
    // Still within the cooldown: no further fetch.
    let token = idp.token().kid("random-again").sign();
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthnError::UnknownKey
    );
    assert_eq!(idp.jwks_fetches() - before, 1);
}

#[tokio::test]
async fn outage_keeps_the_last_good_key_set() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_cache_control(Some("max-age=0"));
    let options = JwksOptions::default()
        .ttl_bounds(Duration::from_millis(100), Duration::from_secs(60))
        .refresh_cooldown(Duration::from_millis(50));
    let v = validator_with(&idp, options);
    v.warm_up().await.unwrap();
    idp.fail_jwks(Some(500));
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Due for refresh, refresh fails in the background: cached keys still serve.
        assert!(v.validate(&idp.token().sign()).await.is_ok());
    }
    assert!(
        idp.jwks_fetches() >= 2,
        "refreshes were attempted during the outage"
    );
    idp.fail_jwks(None);
    let kid = idp.rotate(Algorithm::ES256).unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let token = idp.token().alg(Algorithm::ES256).signing_key(&kid).sign();
    assert!(
        v.validate(&token).await.is_ok(),
        "after the outage new keys arrive"
    );
}

#[tokio::test]
async fn outage_without_cached_keys_is_unavailable_not_unauthorized() {
    let idp = TestIssuer::start().await.unwrap();
    idp.fail_jwks(Some(503));
    let v = validator_with(&idp, JwksOptions::default());
    let err = v.validate(&idp.token().sign()).await.unwrap_err();
    assert_eq!(err, AuthnError::KeysUnavailable);
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn hostile_jwks_documents_are_refused_and_last_good_keys_kept() {
    let idp = TestIssuer::start().await.unwrap();
    let options = JwksOptions::default().max_bytes(4096).max_keys(3);
    let cache = JwksCache::new(&idp.jwks_url(), options).unwrap();
    cache.refresh_now().await.unwrap();
    let good = cache.keys().len();
    let huge_key = format!(
        r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"AQAB"}}]}}"#,
        "A".repeat(10_000)
    );
    let many = format!(
        r#"{{"keys":[{}]}}"#,
        [r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#; 4]
            .join(",")
    );
    for body in [
        huge_key.into_bytes(),
        many.into_bytes(),
        b"not json".to_vec(),
        b"{\"keys\": 5}".to_vec(),
        vec![0xff, 0xfe, 0x00],
    ] {
        idp.serve_raw_jwks(Some(body));
        assert!(cache.refresh_now().await.is_err());
        assert_eq!(cache.keys().len(), good, "last good key set kept");
    }
}

#[tokio::test]
async fn caller_provided_http_client_is_used() {
    let idp = TestIssuer::start().await.unwrap();
    let client = reqwest::Client::builder()
        .user_agent("custom-agent/1")
        .build()
        .unwrap();
    let v: JwtValidator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .jwks_url(idp.jwks_url()),
        )
        .http_client(client)
        .build()
        .unwrap();
    assert!(v.validate(&idp.token().sign()).await.is_ok());
}

#[tokio::test]
async fn unreachable_endpoint_times_out_with_a_clear_error() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
    });
    let cache = JwksCache::new(
        &format!("http://{addr}/jwks.json"),
        JwksOptions::default().timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let err = cache.refresh_now().await.unwrap_err();
    assert!(err.to_string().contains("http"), "{err}");
}

/// Discovery and JWKS documents real providers published (copied from the
/// project's shared fixtures; see the README there for their provenance).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/idp");

fn fixture(name: &str) -> Option<Vec<u8>> {
    Some(std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}")))
}

#[test]
fn real_provider_jwks_documents_parse() {
    // (file, keys, usable keys, a kid that must be found)
    let cases = [
        ("keycloak-jwks.json", 2, 1),
        ("entra-jwks.json", 7, 7),
        ("auth0-jwks.json", 2, 2),
        ("google-jwks.json", 2, 2),
        ("okta-jwks.json", 1, 1),
        ("cognito-jwks.json", 2, 2),
    ];
    let mut seen = 0;
    for (file, keys, usable) in cases {
        let Some(doc) = fixture(file) else { continue };
        seen += 1;
        let set = KeySet::from_jwks(&doc).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(set.len(), keys, "{file}");
        assert_eq!(set.usable_len(), usable, "{file}");
    }
    assert_eq!(seen, 6);
    if let Some(doc) = fixture("cognito-jwks.json") {
        let set = KeySet::from_jwks(&doc).unwrap();
        assert!(
            set.kids()
                .any(|k| k.contains('+') || k.contains('=') || k.contains('/')),
            "kids kept verbatim"
        );
    }
}

#[test]
fn real_provider_discovery_documents_parse() {
    for name in ["keycloak", "entra", "auth0", "google", "okta", "cognito"] {
        let Some(doc) = fixture(&format!("{name}-openid-configuration.json")) else {
            continue;
        };
        let d = OidcDiscovery::from_slice(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let url = d.jwks_uri_for(&d.issuer.clone()).unwrap();
        assert!(url.scheme().starts_with("http"), "{name}");
        // Exact issuer comparison: Auth0's trailing slash matters.
        if name == "auth0" {
            assert!(d.issuer.ends_with('/'));
            assert!(d.jwks_uri_for(d.issuer.trim_end_matches('/')).is_err());
        }
    }
}

#[test]
fn entra_common_discovery_names_the_tenant_template_a_multi_tenant_issuer_takes() {
    let Some(doc) = fixture("entra-openid-configuration.json") else {
        return;
    };
    let d = OidcDiscovery::from_slice(&doc).unwrap();
    assert!(
        d.issuer.contains(tessera_authn::TENANT_PLACEHOLDER),
        "{}",
        d.issuer
    );
    let validator = tessera_authn::JwtValidator::builder()
        .issuer(
            tessera_authn::Issuer::new(d.issuer.clone())
                .tenants(["72f988bf-86f1-41af-91ab-2d7cd011db47"])
                .audience("api://orders")
                .jwks_url(d.jwks_uri.clone()),
        )
        .build();
    assert!(validator.is_ok(), "{:?}", validator.err());
}
