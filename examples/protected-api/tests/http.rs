//! protected-api over real HTTP against a real (test) issuer, and its
//! configuration errors as a process.

use serde_json::Value;
use std::process::Command;
use tessera_authn::Algorithm;
use tessera_authn::test_util::{DpopKey, TestIssuer};

fn config(idp: &TestIssuer, jwks_url: Option<String>) -> protected_api::Config {
    protected_api::Config {
        issuer: idp.issuer().to_owned(),
        audience: idp.audience().to_owned(),
        jwks_url,
        bind: "127.0.0.1:0".parse().unwrap(),
        dpop: protected_api::DpopMode::Allow,
        dpop_nonce: false,
        public_url: None,
    }
}

async fn start(idp: &TestIssuer, jwks_url: Option<String>) -> String {
    serve(config(idp, jwks_url)).await
}

async fn serve(config: protected_api::Config) -> String {
    let app = protected_api::app_with(config.validator().unwrap(), config.dpop_options().unwrap());
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

/// A GET of `url` with `authorization` and an optional proof: status,
/// body, the challenges and the `DPoP-Nonce`.
async fn get(
    url: &str,
    authorization: String,
    proof: Option<String>,
) -> (u16, Value, Vec<String>, Option<String>) {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenges = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null);
    (status, body, challenges, nonce)
}

#[tokio::test]
async fn authn_dpop_allow_accepts_both_and_a_bound_token_only_with_its_proof() {
    let idp = TestIssuer::start().await.unwrap();
    let base = start(&idp, None).await;
    let url = format!("{base}/me");
    let key = DpopKey::generate(Algorithm::ES256);
    let bound = idp.token().subject("alice").bound_to(&key).sign();
    let proof = key.proof("GET", &url).access_token(&bound).sign();
    let (status, body, _, _) = get(&url, format!("DPoP {bound}"), Some(proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["cnf"]["jkt"], key.thumbprint());
    let (status, body, challenges, _) = get(&url, format!("Bearer {bound}"), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
    assert!(challenges[0].starts_with(r#"Bearer realm="protected-api", error="invalid_token""#));
    assert!(challenges[1].starts_with(r#"DPoP realm="protected-api", algs=""#));
    let (status, body, _, _) = get(&url, format!("Bearer {}", idp.token().sign()), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("cnf").is_none());
}

#[tokio::test]
async fn authn_dpop_require_refuses_bearer_and_off_refuses_bound_tokens() {
    let idp = TestIssuer::start().await.unwrap();
    let key = DpopKey::generate(Algorithm::ES256);
    let bound = idp.token().bound_to(&key).sign();

    let mut require = config(&idp, None);
    require.dpop = protected_api::DpopMode::Require;
    let url = format!("{}/me", serve(require).await);
    let (status, _, challenges, _) =
        get(&url, format!("Bearer {}", idp.token().sign()), None).await;
    assert_eq!(status, 401);
    assert_eq!(challenges.len(), 1);
    assert!(challenges[0].contains(r#"error_description="dpop-bound token required""#));
    let proof = key.proof("GET", &url).access_token(&bound).sign();
    assert_eq!(get(&url, format!("DPoP {bound}"), Some(proof)).await.0, 200);

    let mut off = config(&idp, None);
    off.dpop = protected_api::DpopMode::Off;
    let url = format!("{}/me", serve(off).await);
    assert_eq!(get(&url, format!("Bearer {bound}"), None).await.0, 401);
    let proof = key.proof("GET", &url).access_token(&bound).sign();
    let (status, _, challenges, _) = get(&url, format!("DPoP {bound}"), Some(proof)).await;
    assert_eq!(status, 401);
    assert_eq!(challenges, [r#"Bearer realm="protected-api""#]);
    assert_eq!(
        get(&url, format!("Bearer {}", idp.token().sign()), None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn authn_dpop_nonce_and_public_url() {
    let idp = TestIssuer::start().await.unwrap();
    let key = DpopKey::generate(Algorithm::ES256);
    let bound = idp.token().bound_to(&key).sign();
    let mut c = config(&idp, None);
    c.dpop_nonce = true;
    c.public_url = Some("https://api.example.com".into());
    let url = format!("{}/me", serve(c).await);
    let public = "https://api.example.com/me";
    let proof = key.proof("GET", public).access_token(&bound).sign();
    let (status, body, challenges, nonce) = get(&url, format!("DPoP {bound}"), Some(proof)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "use_dpop_nonce");
    assert!(
        challenges
            .iter()
            .any(|c| c.contains(r#"error="use_dpop_nonce""#))
    );
    let nonce = nonce.expect("DPoP-Nonce");
    let proof = key
        .proof("GET", public)
        .access_token(&bound)
        .nonce(&nonce)
        .sign();
    let (status, body, _, _) = get(&url, format!("DPoP {bound}"), Some(proof)).await;
    assert_eq!(status, 200, "{body}");
    // htu names the public URL, not the address the request reached.
    let proof = key
        .proof("GET", &url)
        .access_token(&bound)
        .nonce(&nonce)
        .sign();
    let (status, body, _, _) = get(&url, format!("DPoP {bound}"), Some(proof)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_dpop_proof");
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
