//! protected-api over real HTTP against a real (test) issuer, and its
//! configuration errors as a process.

use serde_json::Value;
use std::process::Command;
use tessera_authn::test_util::TestIssuer;

async fn start(idp: &TestIssuer, jwks_url: Option<String>) -> String {
    let config = protected_api::Config {
        issuer: idp.issuer().to_owned(),
        audience: idp.audience().to_owned(),
        jwks_url,
        bind: "127.0.0.1:0".parse().unwrap(),
    };
    let app = protected_api::app(config.validator().unwrap());
    let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn routes_answer_as_specified() {
    let idp = TestIssuer::start().await.unwrap();
    for jwks_url in [None, Some(idp.jwks_url())] {
        let base = start(&idp, jwks_url).await;
        let client = reqwest::Client::new();
        let get = |path: &str, token: Option<String>| {
            let mut req = client.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
        assert_eq!(get("/me", None).await.unwrap().status(), 401);
        assert_eq!(get("/admin", None).await.unwrap().status(), 401);

        let user = idp.token().subject("alice").claim("scope", "read").sign();
        let res = get("/me", Some(user.clone())).await.unwrap();
        assert_eq!(res.status(), 200);
        let claims: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], "read");
        assert_eq!(claims["iss"], idp.issuer());

        let res = get("/admin", Some(user)).await.unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer error="insufficient_scope", scope="admin""#
        );

        let lookalike = idp.token().claim("scope", "administrator").sign();
        assert_eq!(get("/admin", Some(lookalike)).await.unwrap().status(), 403);

        let admin = idp
            .token()
            .subject("root")
            .claim("scope", "read admin")
            .sign();
        let res = get("/admin", Some(admin)).await.unwrap();
        assert_eq!(res.status(), 200);

        let expired = idp
            .token()
            .expires_in_secs(-3600)
            .claim("scope", "admin")
            .sign();
        assert_eq!(get("/admin", Some(expired)).await.unwrap().status(), 401);
        let wrong_aud = idp.token().audience("other").claim("scope", "admin").sign();
        assert_eq!(get("/me", Some(wrong_aud)).await.unwrap().status(), 401);
    }
}

#[test]
fn missing_configuration_exits_non_zero_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_protected-api"))
        .env_remove("AUTHN_ISSUER")
        .env_remove("AUTHN_AUDIENCE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AUTHN_ISSUER is not set"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_protected-api"))
        .env("AUTHN_ISSUER", "https://idp.example")
        .env("AUTHN_AUDIENCE", "api")
        .env("BIND", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("BIND is invalid"));
}
