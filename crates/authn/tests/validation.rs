//! Every validation rule, against a real HTTP issuer with real keys.

mod common;

use common::{discovery_validator, trusted, validator_for};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{Algorithm, AuthnError, Issuer, JwtValidator, KeySet, TokenTypes};

const ALL_ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

async fn idp() -> TestIssuer {
    TestIssuer::start().await.expect("test issuer")
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn part(token: &str, i: usize) -> &str {
    token.split('.').nth(i).unwrap()
}

#[tokio::test]
async fn every_asymmetric_algorithm_is_accepted() {
    let idp = idp().await;
    for alg in ALL_ASYMMETRIC {
        idp.add_key(alg).unwrap();
    }
    let v = discovery_validator(&idp);
    for alg in ALL_ASYMMETRIC {
        let token = idp.token().alg(alg).subject("alice").sign();
        let p = v
            .validate(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(p.subject(), Some("alice"));
        assert_eq!(p.issuer(), idp.issuer());
    }
}

#[tokio::test]
async fn keys_without_alg_verify_their_family_only() {
    let idp = idp().await;
    let kid = idp.add_key_without_alg(Algorithm::RS256).unwrap();
    let v = discovery_validator(&idp);
    for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::RS512] {
        let token = idp.token().alg(alg).signing_key(&kid).sign();
        assert!(v.validate(&token).await.is_ok(), "{alg:?}");
    }
    // An RSA key never verifies an ES256 token, whatever the header says.
    let forged = idp
        .token()
        .alg(Algorithm::RS256)
        .signing_key(&kid)
        .header("alg", "ES256")
        .sign();
    assert_eq!(
        v.validate(&forged).await.unwrap_err(),
        AuthnError::KeyMismatch
    );
}

#[tokio::test]
async fn alg_none_is_rejected_in_any_case() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let claims = b64(
        &json!({"iss": idp.issuer(), "aud": idp.audience(), "exp": 4_000_000_000_i64, "sub": "x"})
            .to_string(),
    );
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&format!(r#"{{"alg":"{none}","typ":"JWT"}}"#));
        let unsigned = format!("{header}.{claims}.");
        assert_eq!(
            v.validate(&unsigned).await.unwrap_err(),
            AuthnError::Malformed,
            "{none}"
        );
        let with_junk_signature = format!("{header}.{claims}.{}", b64("sig"));
        assert_eq!(
            v.validate(&with_junk_signature).await.unwrap_err(),
            AuthnError::AlgorithmNotAllowed,
            "{none}"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let good = idp.token().sign();
    let kid = serde_json::from_slice::<serde_json::Value>(
        &URL_SAFE_NO_PAD.decode(part(&good, 0)).unwrap(),
    )
    .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = idp.public_pem(&kid).unwrap();
    // The classic confusion attack: HMAC keyed with the public key's bytes.
    for secret in [
        pem.as_bytes().to_vec(),
        serde_json::to_vec(&idp.jwks()["keys"][0]).unwrap(),
    ] {
        let header = b64(&format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#));
        let message = format!("{header}.{}", part(&good, 1));
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let mac = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert_eq!(
            v.validate(&forged).await.unwrap_err(),
            AuthnError::AlgorithmNotAllowed
        );
    }
}

#[tokio::test]
async fn hs256_works_only_with_an_explicit_secret() {
    let idp = idp().await;
    let kid = idp.add_key(Algorithm::HS256).unwrap();
    let secret = idp.hmac_secret(&kid).unwrap();
    let token = idp.token().alg(Algorithm::HS256).without_kid().sign();
    assert_eq!(
        discovery_validator(&idp)
            .validate(&token)
            .await
            .unwrap_err(),
        AuthnError::AlgorithmNotAllowed
    );
    let with_secret: JwtValidator = validator_for(trusted(&idp).hmac_secret(&secret).unwrap());
    assert!(with_secret.validate(&token).await.is_ok());
    let mut wrong = secret.clone();
    wrong[0] ^= 1;
    let other: JwtValidator = validator_for(trusted(&idp).hmac_secret(&wrong).unwrap());
    assert_eq!(
        other.validate(&token).await.unwrap_err(),
        AuthnError::InvalidSignature
    );
    assert!(
        Issuer::new("x").hmac_secret(b"short").is_err(),
        "short secrets are refused"
    );
}

#[tokio::test]
async fn stripped_or_tampered_signatures_are_rejected() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let token = idp.token().sign();
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        v.validate(&format!("{message}.")).await.unwrap_err(),
        AuthnError::Malformed
    );
    assert_eq!(
        v.validate(message).await.unwrap_err(),
        AuthnError::Malformed
    );
    let other = idp.token().subject("mallory").sign();
    let spliced = format!(
        "{}.{}.{}",
        part(&other, 0),
        part(&other, 1),
        part(&token, 2)
    );
    assert_eq!(
        v.validate(&spliced).await.unwrap_err(),
        AuthnError::InvalidSignature
    );
}

#[tokio::test]
async fn wrong_key_under_a_known_kid_is_rejected() {
    let idp = idp().await;
    let first = idp.token().sign();
    let first_kid = serde_json::from_slice::<serde_json::Value>(
        &URL_SAFE_NO_PAD.decode(part(&first, 0)).unwrap(),
    )
    .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = idp.add_key(Algorithm::RS256).unwrap();
    let v = discovery_validator(&idp);
    let token = idp.token().signing_key(&other).kid(&first_kid).sign();
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthnError::InvalidSignature
    );
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let token = idp.token().kid("no-such-key").sign();
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthnError::UnknownKey
    );
}

#[tokio::test]
async fn key_bearing_headers_are_never_followed() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let jwk = idp.jwks()["keys"][0].clone();
    for (name, value) in [
        ("jwk", jwk),
        ("jku", json!("http://127.0.0.1:1/evil.json")),
        ("x5u", json!("http://127.0.0.1:1/evil.pem")),
    ] {
        let token = idp.token().header(name, value).sign();
        assert_eq!(
            v.validate(&token).await.unwrap_err(),
            AuthnError::ForbiddenHeader,
            "{name}"
        );
    }
}

#[tokio::test]
async fn keys_are_bound_to_their_declared_alg_and_use() {
    let idp = idp().await;
    let es256 = idp.add_key(Algorithm::ES256).unwrap();
    let rs = idp.add_key(Algorithm::RS256).unwrap();
    let enc = idp.add_encryption_key().unwrap();
    let v = discovery_validator(&idp);
    // The RSA key is published with alg RS256: a PS256 signature by the same key is refused.
    let ps = idp.token().alg(Algorithm::PS256).signing_key(&rs).sign();
    assert_eq!(v.validate(&ps).await.unwrap_err(), AuthnError::KeyMismatch);
    // ES256 key presented as ES384.
    let es = idp
        .token()
        .alg(Algorithm::ES256)
        .signing_key(&es256)
        .header("alg", "ES384")
        .sign();
    assert_eq!(v.validate(&es).await.unwrap_err(), AuthnError::KeyMismatch);
    // A `use: enc` key never verifies a signature.
    let by_enc = idp.token().signing_key(&enc).sign();
    assert_eq!(
        v.validate(&by_enc).await.unwrap_err(),
        AuthnError::KeyMismatch
    );
}

#[tokio::test]
async fn ecdsa_signatures_in_der_form_or_all_zeros_are_rejected() {
    let idp = idp().await;
    idp.add_key(Algorithm::ES256).unwrap();
    idp.add_key(Algorithm::ES384).unwrap();
    let v = discovery_validator(&idp);
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let der = idp.token().alg(alg).der_ecdsa_signature().sign();
        assert_eq!(
            v.validate(&der).await.unwrap_err(),
            AuthnError::InvalidSignature
        );
        let good = idp.token().alg(alg).sign();
        let len = URL_SAFE_NO_PAD.decode(part(&good, 2)).unwrap().len();
        let zeros = format!(
            "{}.{}.{}",
            part(&good, 0),
            part(&good, 1),
            URL_SAFE_NO_PAD.encode(vec![0u8; len])
        );
        assert_eq!(
            v.validate(&zeros).await.unwrap_err(),
            AuthnError::InvalidSignature
        );
        assert!(v.validate(&good).await.is_ok());
    }
}

#[tokio::test]
async fn time_claims_are_checked_with_leeway() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let now = tessera_now();
    let expired = idp.token().claim("exp", now - 61).sign();
    assert_eq!(v.validate(&expired).await.unwrap_err(), AuthnError::Expired);
    let within_leeway = idp.token().claim("exp", now - 30).sign();
    assert!(v.validate(&within_leeway).await.is_ok());
    let not_yet = idp.token().claim("nbf", now + 120).sign();
    assert_eq!(
        v.validate(&not_yet).await.unwrap_err(),
        AuthnError::NotYetValid
    );
    let nbf_in_leeway = idp.token().claim("nbf", now + 30).sign();
    assert!(v.validate(&nbf_in_leeway).await.is_ok());
    let future_iat = idp.token().claim("iat", now + 3600).sign();
    assert_eq!(
        v.validate(&future_iat).await.unwrap_err(),
        AuthnError::IssuedInFuture
    );
    let strict: JwtValidator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .discovery(),
        )
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        strict.validate(&within_leeway).await.unwrap_err(),
        AuthnError::Expired
    );
}

fn tessera_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn issuer_audience_and_exp_are_required() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let cases = [
        (
            idp.token().claim("iss", "https://evil.example").sign(),
            AuthnError::UntrustedIssuer,
        ),
        (
            idp.token().without_claim("iss").sign(),
            AuthnError::UntrustedIssuer,
        ),
        (
            idp.token().claim("aud", "other-api").sign(),
            AuthnError::InvalidAudience,
        ),
        (
            idp.token().claim("aud", json!(["a", "b"])).sign(),
            AuthnError::InvalidAudience,
        ),
        (
            idp.token().without_claim("aud").sign(),
            AuthnError::InvalidAudience,
        ),
        (
            idp.token().without_claim("exp").sign(),
            AuthnError::InvalidClaims,
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(v.validate(&token).await.unwrap_err(), expected);
    }
    let many = idp
        .token()
        .claim("aud", json!(["other", idp.audience()]))
        .sign();
    assert!(
        v.validate(&many).await.is_ok(),
        "one matching audience among several is enough"
    );
    let case = idp
        .token()
        .claim("aud", idp.audience().to_uppercase())
        .sign();
    assert_eq!(
        v.validate(&case).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
}

#[tokio::test]
async fn claims_of_the_wrong_json_type_are_rejected() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let cases = [
        (
            idp.token().claim("exp", "4000000000").sign(),
            AuthnError::InvalidClaims,
        ),
        (
            idp.token().claim("exp", json!(null)).sign(),
            AuthnError::InvalidClaims,
        ),
        (
            idp.token().claim("aud", 5).sign(),
            AuthnError::InvalidClaims,
        ),
        (
            idp.token().claim("nbf", json!([1])).sign(),
            AuthnError::InvalidClaims,
        ),
        (
            idp.token().claim("sub", json!({"id": 1})).sign(),
            AuthnError::InvalidClaims,
        ),
        (idp.token().claim("iss", 7).sign(), AuthnError::Malformed),
    ];
    for (token, expected) in cases {
        assert_eq!(v.validate(&token).await.unwrap_err(), expected);
    }
    let duplicate = idp.token().sign_raw(
        r#"{"alg":"RS256","typ":"JWT","kid":"rs256-1"}"#,
        &format!(
            r#"{{"iss":"{0}","iss":"{0}","aud":"{1}","exp":4000000000}}"#,
            idp.issuer(),
            idp.audience()
        ),
    );
    assert!(
        v.validate(&duplicate).await.is_err(),
        "duplicate claims are refused"
    );
    let array_payload = idp
        .token()
        .sign_raw(r#"{"alg":"RS256","kid":"rs256-1"}"#, "[1,2]");
    assert_eq!(
        v.validate(&array_payload).await.unwrap_err(),
        AuthnError::Malformed
    );
}

#[tokio::test]
async fn unknown_crit_is_rejected() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let token = idp
        .token()
        .header("crit", json!(["exp"]))
        .header("exp", 1)
        .sign();
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthnError::UnsupportedCrit
    );
    let b64 = idp
        .token()
        .header("crit", json!(["b64"]))
        .header("b64", false)
        .sign();
    assert_eq!(
        v.validate(&b64).await.unwrap_err(),
        AuthnError::UnsupportedCrit
    );
}

#[tokio::test]
async fn token_types_are_configurable() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    for typ in ["JWT", "jwt", "at+jwt", "application/at+jwt", "AT+JWT"] {
        assert!(
            v.validate(&idp.token().header("typ", typ).sign())
                .await
                .is_ok(),
            "{typ}"
        );
    }
    assert!(
        v.validate(&idp.token().without_header("typ").sign())
            .await
            .is_ok()
    );
    for typ in ["JWE", "id+jwt", "", "application/jwt+json"] {
        assert_eq!(
            v.validate(&idp.token().header("typ", typ).sign())
                .await
                .unwrap_err(),
            AuthnError::InvalidType,
            "{typ}"
        );
    }
    let strict: JwtValidator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .discovery(),
        )
        .token_types(TokenTypes::Rfc9068)
        .build()
        .unwrap();
    assert!(
        strict
            .validate(&idp.token().header("typ", "at+jwt").sign())
            .await
            .is_ok()
    );
    assert_eq!(
        strict.validate(&idp.token().sign()).await.unwrap_err(),
        AuthnError::InvalidType
    );
    assert_eq!(
        strict
            .validate(&idp.token().without_header("typ").sign())
            .await
            .unwrap_err(),
        AuthnError::InvalidType
    );
}

#[tokio::test]
async fn garbage_and_oversized_tokens_are_rejected() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    for garbage in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "!!!.???.###",
        "eyJ.eyJ.eyJ",
        "bm9uZQ.bm9uZQ.bm9uZQ",
    ] {
        assert!(v.validate(garbage).await.is_err(), "{garbage}");
    }
    let huge = format!("{}.{}.{}", "a".repeat(5000), "b".repeat(5000), "c");
    assert_eq!(
        v.validate(&huge).await.unwrap_err(),
        AuthnError::TokenTooLarge
    );
    assert_eq!(idp.jwks_fetches(), 0, "garbage never causes a key fetch");
}

#[tokio::test]
async fn unknown_issuer_is_rejected_without_any_network_call() {
    let idp = idp().await;
    let v = discovery_validator(&idp);
    let token = idp.token().claim("iss", "http://127.0.0.1:1/other").sign();
    assert_eq!(
        v.validate(&token).await.unwrap_err(),
        AuthnError::UntrustedIssuer
    );
    assert_eq!(idp.discovery_fetches() + idp.jwks_fetches(), 0);
}

#[tokio::test]
async fn several_issuers_each_with_their_own_audience() {
    let internal = idp().await;
    let partner = idp().await;
    let v: JwtValidator = JwtValidator::builder()
        .issuer(
            Issuer::new(internal.issuer())
                .audience("internal-api")
                .discovery(),
        )
        .issuer(
            Issuer::new(partner.issuer())
                .audience("partner-api")
                .jwks_url(partner.jwks_url()),
        )
        .build()
        .unwrap();
    let a = internal.token().audience("internal-api").sign();
    let b = partner.token().audience("partner-api").sign();
    assert_eq!(v.validate(&a).await.unwrap().issuer(), internal.issuer());
    assert_eq!(v.validate(&b).await.unwrap().issuer(), partner.issuer());
    // The partner's audience is not accepted from the internal issuer, and vice versa.
    let crossed = internal.token().audience("partner-api").sign();
    assert_eq!(
        v.validate(&crossed).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
    // A partner token claiming the internal issuer fails its signature check.
    let forged = partner
        .token()
        .claim("iss", internal.issuer())
        .audience("internal-api")
        .sign();
    assert!(v.validate(&forged).await.is_err());
}

#[tokio::test]
async fn static_keys_from_pem_jwk_and_jwks() {
    let idp = idp().await;
    let ed = idp.add_key(Algorithm::EdDSA).unwrap();
    let token = idp.token().alg(Algorithm::EdDSA).sign();
    let pem = idp.public_pem(&ed).unwrap();
    let jwks = idp.jwks().to_string();
    let jwk = idp.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == ed)
        .unwrap()
        .to_string();
    for keys in [
        KeySet::from_pem(pem.as_bytes(), Some(&ed)).unwrap(),
        KeySet::from_jwk(&jwk).unwrap(),
        KeySet::from_jwks(jwks.as_bytes()).unwrap(),
    ] {
        let v: JwtValidator = validator_for(trusted(&idp).keys(keys));
        assert!(v.validate(&token).await.is_ok());
    }
    assert!(
        KeySet::from_pem(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            None
        )
        .is_err()
    );
}

#[tokio::test]
async fn configuration_errors_are_reported() {
    assert!(JwtValidator::builder().build().is_err());
    let no_aud = JwtValidator::builder()
        .issuer(Issuer::new("https://a").keys(KeySet::default()))
        .build();
    assert!(no_aud.is_err());
    let hs_without_secret = JwtValidator::builder()
        .issuer(
            Issuer::new("https://a")
                .audience("x")
                .keys(KeySet::default())
                .algorithms([Algorithm::HS256]),
        )
        .build();
    assert!(hs_without_secret.is_err());
    let twice = JwtValidator::builder()
        .issuer(
            Issuer::new("https://a")
                .audience("x")
                .keys(KeySet::default()),
        )
        .issuer(
            Issuer::new("https://a")
                .audience("y")
                .keys(KeySet::default()),
        )
        .build();
    assert!(twice.is_err());
}

#[derive(Debug, Clone, serde::Deserialize)]
struct TypedExtra {
    scope: String,
    tenant: u32,
}

#[tokio::test]
async fn claims_deserialize_into_the_callers_type() {
    let idp = idp().await;
    let v: JwtValidator<TypedExtra> = JwtValidator::builder()
        .claims::<TypedExtra>()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .discovery(),
        )
        .build()
        .unwrap();
    let token = idp
        .token()
        .claim("scope", "read write")
        .claim("tenant", 7)
        .sign();
    let p = v.validate(&token).await.unwrap();
    assert_eq!(p.claims().extra.tenant, 7);
    assert_eq!(p.claims().extra.scope, "read write");
    let wrong = idp
        .token()
        .claim("scope", "read")
        .claim("tenant", "seven")
        .sign();
    assert_eq!(
        v.validate(&wrong).await.unwrap_err(),
        AuthnError::InvalidClaims
    );
}

#[tokio::test]
async fn validated_token_cache_serves_repeats_and_never_past_exp() {
    let idp = idp().await;
    let v: JwtValidator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .discovery(),
        )
        .cache_validated_tokens(1000)
        .build()
        .unwrap();
    let token = idp.token().expires_in_secs(2).sign();
    let first = v.validate(&token).await.unwrap();
    // Served from the cache: the same Arc'd principal comes back.
    let second = v.validate_now(&token).unwrap().unwrap();
    assert!(std::ptr::eq(first.claims(), second.claims()));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Past exp the cache must not answer; full validation (with leeway) runs again.
    let third = v.validate(&token).await.unwrap();
    assert!(!std::ptr::eq(first.claims(), third.claims()));
    let tampered = format!("{}x", &token[..token.len() - 1]);
    assert!(v.validate(&tampered).await.is_err());
}

/// An Entra-style multi-tenant issuer whose keys are the test issuer's.
fn multi_tenant(idp: &TestIssuer, tenants: Option<&[&str]>) -> JwtValidator {
    let issuer = Issuer::new("https://login.microsoftonline.com/{tenantid}/v2.0")
        .audience(idp.audience())
        .jwks_url(idp.jwks_url());
    let issuer = match tenants {
        Some(list) => issuer.tenants(list.iter().copied()),
        None => issuer.any_tenant(),
    };
    JwtValidator::builder()
        .issuer(issuer)
        .build()
        .expect("validator")
}

const TENANT_A: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const TENANT_B: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

fn tenant_iss(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

#[tokio::test]
async fn a_multi_tenant_issuer_accepts_listed_tenants_whose_tid_matches() {
    let idp = idp().await;
    let v = multi_tenant(&idp, Some(&[TENANT_A]));
    let token = idp
        .token()
        .claim("iss", tenant_iss(TENANT_A))
        .claim("tid", TENANT_A)
        .sign();
    let principal = v.validate(&token).await.expect("tenant A is accepted");
    assert_eq!(
        principal.issuer(),
        tenant_iss(TENANT_A),
        "the tenant's issuer"
    );

    // Another tenant, even correctly signed by the same keys.
    let other = idp
        .token()
        .claim("iss", tenant_iss(TENANT_B))
        .claim("tid", TENANT_B)
        .sign();
    assert_eq!(
        v.validate(&other).await.unwrap_err(),
        AuthnError::UntrustedIssuer
    );
}

#[tokio::test]
async fn a_multi_tenant_token_must_name_its_tenant_in_tid_and_iss_alike() {
    let idp = idp().await;
    let v = multi_tenant(&idp, Some(&[TENANT_A, TENANT_B]));
    let cases = [
        (
            "tid of another tenant",
            idp.token()
                .claim("iss", tenant_iss(TENANT_A))
                .claim("tid", TENANT_B),
        ),
        ("no tid", idp.token().claim("iss", tenant_iss(TENANT_A))),
        (
            "the template itself as iss",
            idp.token()
                .claim("iss", "https://login.microsoftonline.com/{tenantid}/v2.0")
                .claim("tid", "{tenantid}"),
        ),
        (
            "a path in the tenant",
            idp.token()
                .claim("iss", tenant_iss(&format!("{TENANT_A}/x")))
                .claim("tid", format!("{TENANT_A}/x")),
        ),
        (
            "an empty tenant",
            idp.token().claim("iss", tenant_iss("")).claim("tid", ""),
        ),
        (
            "another host",
            idp.token()
                .claim("iss", format!("https://evil.example/{TENANT_A}/v2.0"))
                .claim("tid", TENANT_A),
        ),
    ];
    for (case, token) in cases {
        assert_eq!(
            v.validate(&token.sign()).await.unwrap_err(),
            AuthnError::UntrustedIssuer,
            "{case}"
        );
    }
}

#[tokio::test]
async fn any_tenant_accepts_every_well_formed_tenant_but_still_checks_signature_and_audience() {
    let idp = idp().await;
    let v = multi_tenant(&idp, None);
    for tenant in [TENANT_A, TENANT_B] {
        let token = idp
            .token()
            .claim("iss", tenant_iss(tenant))
            .claim("tid", tenant)
            .sign();
        assert!(v.validate(&token).await.is_ok(), "{tenant}");
    }
    let wrong_aud = idp
        .token()
        .claim("iss", tenant_iss(TENANT_A))
        .claim("tid", TENANT_A)
        .audience("someone-else")
        .sign();
    assert_eq!(
        v.validate(&wrong_aud).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
    let good = idp
        .token()
        .claim("iss", tenant_iss(TENANT_A))
        .claim("tid", TENANT_A)
        .sign();
    let (h, p, _) = (part(&good, 0), part(&good, 1), part(&good, 2));
    let unsigned = format!("{h}.{p}.{}", b64("not a signature"));
    assert_eq!(
        v.validate(&unsigned).await.unwrap_err(),
        AuthnError::InvalidSignature
    );
}

#[test]
fn multi_tenant_issuers_are_configured_explicitly() {
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let keys = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
    let build = |issuer: Issuer| JwtValidator::builder().issuer(issuer).build().unwrap_err();
    let errors = [
        // A template without saying which tenants.
        build(Issuer::new(template).audience("api").jwks_url(keys)),
        // Tenants for an issuer that names none.
        build(
            Issuer::new("https://idp.example")
                .tenants([TENANT_A])
                .audience("api")
                .jwks_url(keys),
        ),
        // No discovery document exists for the template.
        build(
            Issuer::new(template)
                .any_tenant()
                .audience("api")
                .discovery(),
        ),
        // An empty allow-list.
        build(
            Issuer::new(template)
                .tenants(Vec::<String>::new())
                .audience("api")
                .jwks_url(keys),
        ),
    ];
    for error in errors {
        assert!(
            error.to_string().starts_with("multi-tenant issuer "),
            "{error}"
        );
    }
}
