//! RFC 7662 introspection over real HTTP against the test issuer: the
//! decision, the cache, and opaque tokens through `AuthnLayer`.

mod common;

use common::{trusted, validator_for};

use axum::Router;
use axum::routing::get;
use std::time::Duration;
use tessera_authn::introspection::Introspection;
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authn::{AuthnError, AuthnLayer, ConfigError, Issuer, JwtValidator, Principal};

async fn partner() -> TestIssuer {
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(TestClient::new("orders-api", "s3cret"));
    idp
}

fn introspecting(idp: &TestIssuer, audience: &str) -> JwtValidator {
    JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(audience)
                .introspection(Introspection::new("orders-api", "s3cret")),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn active_inactive_expired_and_wrong_audience() {
    let idp = partner().await;
    let validator = introspecting(&idp, idp.audience());
    let active = idp
        .token()
        .subject("acme")
        .claim("scope", "orders:read")
        .opaque();
    let principal = validator.validate(&active).await.unwrap();
    assert_eq!(principal.subject(), Some("acme"));
    assert_eq!(principal.issuer(), idp.issuer());
    assert_eq!(principal.claims().extra["scope"], "orders:read");
    assert_eq!(principal.bearer_token(), active);

    let revoked = idp.token().opaque();
    idp.revoke(&revoked);
    assert_eq!(
        validator.validate(&revoked).await.unwrap_err(),
        AuthnError::Inactive
    );
    let unknown = "never-issued-token";
    assert_eq!(
        validator.validate(unknown).await.unwrap_err(),
        AuthnError::Inactive
    );
    // The issuer reports expired tokens inactive.
    let expired = idp.token().expires_in_secs(-10).opaque();
    assert_eq!(
        validator.validate(&expired).await.unwrap_err(),
        AuthnError::Inactive
    );
    let wrong_audience = idp.token().audience("someone-else").opaque();
    assert_eq!(
        validator.validate(&wrong_audience).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
    let wrong_issuer = idp.token().claim("iss", "https://evil.example").opaque();
    assert_eq!(
        validator.validate(&wrong_issuer).await.unwrap_err(),
        AuthnError::UntrustedIssuer
    );
}

#[tokio::test]
async fn results_are_cached_and_negative_results_briefly() {
    let idp = partner().await;
    let validator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .introspection(
                    Introspection::new("orders-api", "s3cret")
                        .endpoint(idp.introspection_url())
                        .negative_ttl(Duration::from_millis(300)),
                ),
        )
        .build()
        .unwrap();
    let token = idp.token().opaque();
    for _ in 0..5 {
        validator.validate(&token).await.unwrap();
    }
    assert_eq!(idp.introspection_requests(), 1);

    let later = "not-yet-known";
    assert_eq!(
        validator.validate(later).await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(
        validator.validate(later).await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(idp.introspection_requests(), 2, "negative result cached");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        validator.validate(later).await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(idp.introspection_requests(), 3, "negative result expired");
}

#[tokio::test]
async fn cached_results_never_outlive_exp() {
    let idp = partner().await;
    let validator = JwtValidator::builder()
        .leeway(Duration::ZERO)
        .issuer(
            Issuer::new(idp.issuer())
                .audience(idp.audience())
                .introspection(Introspection::new("orders-api", "s3cret")),
        )
        .build()
        .unwrap();
    let token = idp.token().expires_in_secs(1).opaque();
    validator.validate(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(validator.validate(&token).await.is_err());
}

#[tokio::test]
async fn cache_key_isolation_two_tokens_two_audiences() {
    let idp = partner().await;
    let orders = introspecting(&idp, "orders");
    let billing = introspecting(&idp, "billing");
    let for_orders = idp.token().audience("orders").opaque();
    let for_billing = idp.token().audience("billing").opaque();
    assert!(orders.validate(&for_orders).await.is_ok());
    assert!(billing.validate(&for_billing).await.is_ok());
    // Each validator's cached "yes" is about its own audience only.
    assert_eq!(
        orders.validate(&for_billing).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
    assert_eq!(
        billing.validate(&for_orders).await.unwrap_err(),
        AuthnError::InvalidAudience
    );
    assert!(orders.validate(&for_orders).await.is_ok());
    assert_eq!(
        orders.validate(&for_orders).await.unwrap().bearer_token(),
        for_orders
    );
}

#[tokio::test]
async fn endpoint_failures_are_503_and_not_cached() {
    let idp = partner().await;
    let validator = introspecting(&idp, idp.audience());
    let token = idp.token().opaque();
    idp.fail_token_endpoint(Some(500));
    let error = validator.validate(&token).await.unwrap_err();
    assert_eq!(error, AuthnError::IntrospectionUnavailable);
    assert_eq!(error.status(), 503);
    idp.fail_token_endpoint(None);
    assert!(validator.validate(&token).await.is_ok());

    let wrong_secret =
        validator_for(trusted(&idp).introspection(Introspection::new("orders-api", "wrong")));
    assert_eq!(
        wrong_secret.validate(&token).await.unwrap_err(),
        AuthnError::IntrospectionUnavailable
    );
}

#[tokio::test]
async fn jwt_fast_path_is_kept_when_the_issuer_has_keys() {
    let idp = partner().await;
    let validator = validator_for(
        trusted(&idp)
            .discovery()
            .introspection(Introspection::new("orders-api", "s3cret")),
    );
    let jwt = idp.token().sign();
    assert!(validator.validate(&jwt).await.is_ok());
    assert_eq!(idp.introspection_requests(), 0);
    let opaque = idp.token().opaque();
    assert!(validator.validate(&opaque).await.is_ok());
    assert_eq!(idp.introspection_requests(), 1);
}

#[tokio::test]
async fn issuers_without_keys_have_their_jwts_introspected() {
    let idp = partner().await;
    let validator = introspecting(&idp, idp.audience());
    let known = idp.token().sign_introspectable();
    assert!(validator.validate(&known).await.is_ok());
    idp.revoke(&known);
    let revoked_but_cached = validator.validate(&known).await;
    assert!(revoked_but_cached.is_ok(), "cached for at most cache_ttl");
    // A JWT signed correctly but unknown to the issuer: introspection decides.
    let unknown = idp.token().subject("someone-else").sign();
    assert_eq!(
        validator.validate(&unknown).await.unwrap_err(),
        AuthnError::Inactive
    );
}

#[tokio::test]
async fn opaque_tokens_are_rejected_without_introspection() {
    let idp = partner().await;
    let validator = validator_for(trusted(&idp).discovery());
    let opaque = idp.token().opaque();
    assert_eq!(
        validator.validate(&opaque).await.unwrap_err(),
        AuthnError::Malformed
    );
    assert_eq!(idp.introspection_requests(), 0);
}

#[tokio::test]
async fn several_introspecting_issuers_need_an_opaque_target() {
    let a = partner().await;
    let b = partner().await;
    let issuer = |idp: &TestIssuer| {
        Issuer::new(idp.issuer())
            .audience("api")
            .introspection(Introspection::new("orders-api", "s3cret"))
    };
    let error = JwtValidator::builder()
        .issuer(issuer(&a))
        .issuer(issuer(&b))
        .build()
        .unwrap_err();
    assert!(matches!(error, ConfigError::Introspection(_)), "{error}");
    let error = JwtValidator::builder()
        .issuer(issuer(&a))
        .opaque_tokens("https://unknown.example")
        .build()
        .unwrap_err();
    assert!(matches!(error, ConfigError::Introspection(_)), "{error}");

    let validator = JwtValidator::builder()
        .issuer(issuer(&a))
        .issuer(issuer(&b))
        .opaque_tokens(b.issuer())
        .build()
        .unwrap();
    let from_b = b.token().audience("api").opaque();
    assert!(validator.validate(&from_b).await.is_ok());
    let from_a = a.token().audience("api").opaque();
    assert_eq!(
        validator.validate(&from_a).await.unwrap_err(),
        AuthnError::Inactive
    );
    assert_eq!(a.introspection_requests(), 0, "never sent to another party");
}

#[tokio::test]
async fn authn_layer_accepts_opaque_tokens_next_to_jwts() {
    let internal = TestIssuer::start().await.unwrap();
    let partner = partner().await;
    let validator = JwtValidator::builder()
        .issuer(
            Issuer::new(internal.issuer())
                .audience("orders-api")
                .discovery(),
        )
        .issuer(
            Issuer::new(partner.issuer())
                .audience("orders-api")
                .introspection(Introspection::new("orders-api", "s3cret")),
        )
        .cache_validated_tokens(100)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move {
                format!("{} from {}", p.subject().unwrap_or("?"), p.issuer())
            }),
        )
        .layer(AuthnLayer::new(validator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let call = |token: String| http.get(format!("{base}/me")).bearer_auth(token).send();

    let user = internal
        .token()
        .subject("alice")
        .audience("orders-api")
        .sign();
    let res = call(user).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        format!("alice from {}", internal.issuer())
    );

    let acme = partner
        .token()
        .subject("acme")
        .audience("orders-api")
        .opaque();
    let res = call(acme.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        format!("acme from {}", partner.issuer())
    );
    assert_eq!(call(acme).await.unwrap().status(), 200);
    assert_eq!(partner.introspection_requests(), 1);

    let revoked = partner.token().audience("orders-api").opaque();
    partner.revoke(&revoked);
    let res = call(revoked).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="api", error="invalid_token", error_description="token not active""#
    );

    partner.fail_token_endpoint(Some(503));
    let res = call(partner.token().audience("orders-api").opaque())
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
}
