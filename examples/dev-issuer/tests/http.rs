//! dev-issuer over real HTTP: discovery, JWKS, every grant, every error
//! path of the token and introspection endpoints, and bad configuration as a
//! process.

use serde_json::{Value, json};
use std::process::Command;
use tessera_authn::client::{AuthMethod, ClientCredentials, TokenExchange};
use tessera_authn::introspection::Introspection;
use tessera_authn::test_util::{TOKEN_EXCHANGE_GRANT, TestIssuer};
use tessera_authn::{Issuer, JwtValidator, TokenTypes};

const CLIENTS: &str = r#"[
  {"client_id": "orders", "client_secret": "orders-secret", "scopes": ["billing:read", "billing:write"], "audience": "billing"},
  {"client_id": "gateway", "client_secret": "gw secret&=", "scopes": [], "audience": ["comments", "users"]}
]"#;
const USERS: &str = r#"[
  {"username": "alice", "password": "wonderland", "sub": "user-alice", "scopes": ["comments:write"], "claims": {"name": "Alice", "sub": "ignored"}}
]"#;

async fn start() -> TestIssuer {
    let env = [
        ("BIND", "127.0.0.1:0"),
        ("DEV_ISSUER_CLIENTS", CLIENTS),
        ("DEV_ISSUER_USERS", USERS),
    ];
    let config = dev_issuer::Config::from_lookup(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    dev_issuer::start(config).await.unwrap()
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

async fn post(url: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().post(url).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.json().await.unwrap();
    Answer {
        status,
        challenge,
        body,
    }
}

fn strict_validator(idp: &TestIssuer, audience: &str) -> JwtValidator {
    JwtValidator::builder()
        .issuer(Issuer::new(idp.issuer()).audience(audience).discovery())
        .token_types(TokenTypes::Rfc9068)
        .build()
        .unwrap()
}

#[tokio::test]
async fn discovery_and_jwks() {
    let idp = start().await;
    let doc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", idp.issuer()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], idp.issuer());
    assert_eq!(doc["jwks_uri"], format!("{}/jwks.json", idp.issuer()));
    assert_eq!(doc["token_endpoint"], format!("{}/token", idp.issuer()));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{}/introspect", idp.issuer())
    );
    let grants = doc["grant_types_supported"].as_array().unwrap();
    for grant in ["client_credentials", "password", TOKEN_EXCHANGE_GRANT] {
        assert!(grants.contains(&json!(grant)), "{grant}");
    }
    let jwks: Value = reqwest::get(format!("{}/jwks.json", idp.issuer()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
}

#[tokio::test]
async fn client_credentials_tokens_carry_the_specified_claims() {
    let idp = start().await;
    let token_url = format!("{}/token", idp.issuer());
    for basic in [true, false] {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("scope", "billing:read"),
        ];
        if !basic {
            form.extend([("client_id", "orders"), ("client_secret", "orders-secret")]);
        }
        let answer = post(
            &token_url,
            basic.then_some(("orders", "orders-secret")),
            &form,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["token_type"], "Bearer");
        assert_eq!(answer.body["scope"], "billing:read");
        assert!(answer.body["expires_in"].as_i64().unwrap() > 0);
        let token = answer.body["access_token"].as_str().unwrap();

        // Any standard library validates it against the JWKS.
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(format!("{}/jwks.json", idp.issuer()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["billing"]);
        validation.set_issuer(&[idp.issuer()]);
        let data = jsonwebtoken::decode::<Value>(
            token,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        let claims = data.claims;
        for claim in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "scope",
            "client_id",
        ] {
            assert!(claims.get(claim).is_some(), "{claim} missing");
        }
        assert_eq!(claims["sub"], "orders");
        assert_eq!(claims["client_id"], "orders");
        assert!(
            strict_validator(&idp, "billing")
                .validate(token)
                .await
                .is_ok()
        );
    }
    // No scope asked: all the client's scopes.
    let answer = post(
        &token_url,
        Some(("orders", "orders-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(answer.body["scope"], "billing:read billing:write");
    // An audience among the client's; secrets with reserved characters.
    let answer = post(
        &token_url,
        Some(("gateway", "gw secret&=")),
        &[("grant_type", "client_credentials"), ("audience", "users")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let token = answer.body["access_token"].as_str().unwrap();
    assert!(
        strict_validator(&idp, "users")
            .validate(token)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_library_client_works_against_it() {
    let idp = start().await;
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let cc = ClientCredentials::builder("gateway", "gw secret&=")
            .discovery(idp.issuer())
            .auth_method(method)
            .audience("comments")
            .build()
            .unwrap();
        let token = cc.token().await.unwrap();
        assert!(
            strict_validator(&idp, "comments")
                .validate(token.secret())
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn dpop_bound_tokens_through_the_nonce_demand() {
    use tessera_authn::client::DpopSigner;
    let config = dev_issuer::Config::from_lookup(|k| match k {
        "BIND" => Some("127.0.0.1:0".to_owned()),
        "DEV_ISSUER_CLIENTS" => Some(CLIENTS.to_owned()),
        "DEV_ISSUER_DPOP_NONCE" => Some("on".to_owned()),
        _ => None,
    })
    .unwrap();
    assert!(config.dpop_nonce);
    let idp = dev_issuer::start(config).await.unwrap();

    // A proof without the nonce: 400 use_dpop_nonce, with the nonce to use.
    let signer = DpopSigner::generate(tessera_authn::Algorithm::ES256).unwrap();
    let proof = signer.proof("POST", &idp.token_url(), None, None).unwrap();
    let response = reqwest::Client::new()
        .post(idp.token_url())
        .basic_auth("gateway", Some("gw secret&="))
        .header("dpop", proof)
        .form(&[
            ("grant_type", "client_credentials"),
            ("audience", "comments"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().contains_key("dpop-nonce"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");

    // The library client follows it and gets a token bound to its key.
    let cc = ClientCredentials::builder("gateway", "gw secret&=")
        .discovery(idp.issuer())
        .audience("comments")
        .dpop(signer.clone())
        .build()
        .unwrap();
    let token = cc.token().await.unwrap();
    assert_eq!(token.scheme(), "DPoP");
    use base64::Engine as _;
    let payload = token.secret().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["jkt"], signer.thumbprint());
    assert_eq!(claims["aud"], "comments");
}

#[tokio::test]
async fn password_grant_for_dev_users() {
    let idp = start().await;
    let url = format!("{}/token", idp.issuer());
    let basic = Some(("orders", "orders-secret"));
    let answer = post(
        &url,
        basic,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let token = answer.body["access_token"].as_str().unwrap();
    let principal = strict_validator(&idp, "billing")
        .validate(token)
        .await
        .unwrap();
    assert_eq!(
        principal.subject(),
        Some("user-alice"),
        "registered claims win"
    );
    assert_eq!(principal.claims().extra["name"], "Alice");
    assert_eq!(principal.claims().extra["scope"], "comments:write");

    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "nope"),
            ],
            "invalid_grant",
        ),
        (
            &[
                ("grant_type", "password"),
                ("username", "bob"),
                ("password", "wonderland"),
            ],
            "invalid_grant",
        ),
        (
            &[("grant_type", "password"), ("password", "wonderland")],
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
    ];
    for (form, code) in cases {
        let answer = post(&url, basic, form).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some(code)),
            "{form:?}"
        );
    }
}

/// A password-grant token of alice, asked for by `orders`.
async fn alice_token(url: &str) -> String {
    let answer = post(
        url,
        Some(("orders", "orders-secret")),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
        ],
    )
    .await;
    answer.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_exchange() {
    let idp = start().await;
    let url = format!("{}/token", idp.issuer());
    let subject = alice_token(&url).await;
    let exchange = TokenExchange::builder("gateway", "gw secret&=")
        .discovery(idp.issuer())
        .build()
        .unwrap();
    let token = exchange.exchange(&subject, "comments", &[]).await.unwrap();
    let principal = strict_validator(&idp, "comments")
        .validate(token.secret())
        .await
        .unwrap();
    assert_eq!(principal.subject(), Some("user-alice"));
    assert_eq!(principal.claims().extra["act"]["sub"], "gateway");

    let at = "urn:ietf:params:oauth:token-type:access_token";
    let gw = Some(("gateway", "gw secret&="));
    let revoked = alice_token(&url).await;
    idp.revoke(&revoked);
    // RFC 8693 §2.2.2: a bad request or an invalid or unacceptable subject or
    // actor token is `invalid_request`; a target the server will not issue
    // for is `invalid_target`; RFC 6749 §5.2 `invalid_scope` for scopes.
    let cases: [(Vec<(&str, &str)>, &str); 13] = [
        (vec![("subject_token_type", at)], "invalid_request"),
        (vec![("subject_token", &subject)], "invalid_request"),
        (
            vec![("subject_token", &subject), ("subject_token_type", "urn:x")],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("requested_token_type", "urn:x"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("actor_token", "x"),
            ],
            "invalid_request",
        ),
        (
            vec![("subject_token", "forged"), ("subject_token_type", at)],
            "invalid_request",
        ),
        (
            vec![("subject_token", &revoked), ("subject_token_type", at)],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("actor_token_type", at),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("actor_token", &subject),
                ("actor_token_type", at),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("audience", "payroll"),
            ],
            "invalid_target",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("resource", "https://comments.example"),
            ],
            "invalid_target",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("audience", "comments"),
                ("audience", "users"),
            ],
            "invalid_target",
        ),
        (
            vec![
                ("subject_token", &subject),
                ("subject_token_type", at),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
    ];
    for (mut form, code) in cases {
        form.push(("grant_type", TOKEN_EXCHANGE_GRANT));
        let answer = post(&url, gw, &form).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some(code)),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn token_endpoint_error_paths() {
    let idp = start().await;
    let url = format!("{}/token", idp.issuer());
    let cc = [("grant_type", "client_credentials")];

    // invalid_client: 401, with a Basic challenge when basic auth was tried or missing.
    let answer = post(&url, None, &cc).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(answer.challenge.unwrap().starts_with("Basic"));
    let answer = post(&url, Some(("orders", "wrong")), &cc).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(answer.challenge.unwrap().starts_with("Basic"));
    let answer = post(&url, Some(("nobody", "x")), &cc).await;
    assert_eq!(answer.status, 401);
    let answer = post(
        &url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "orders"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(answer.challenge.is_none());
    let raw = reqwest::Client::new()
        .post(&url)
        .header("authorization", "Basic !!!not-base64")
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    let raw = reqwest::Client::new()
        .post(&url)
        .header("authorization", "Bearer abc")
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);

    let basic = Some(("orders", "orders-secret"));
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[], "invalid_request"),
        (
            &[
                ("grant_type", "client_credentials"),
                ("audience", "billing"),
                ("audience", "billing"),
            ],
            "invalid_request",
        ),
        (
            &[("grant_type", "authorization_code")],
            "unsupported_grant_type",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "admin")],
            "invalid_scope",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("scope", "billing:read admin"),
            ],
            "invalid_scope",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("audience", "payroll"),
            ],
            "invalid_target",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", "orders-secret"),
            ],
            "invalid_request",
        ),
    ];
    for (form, code) in cases {
        let answer = post(&url, basic, form).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (400, Some(code)),
            "{form:?}"
        );
        assert!(answer.body["error_description"].is_string());
    }

    // Repeated parameters and non-form bodies.
    let raw = reqwest::Client::new()
        .post(&url)
        .basic_auth("orders", Some("orders-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=password")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(
        raw.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let raw = reqwest::Client::new()
        .post(&url)
        .basic_auth("orders", Some("orders-secret"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(
        raw.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let raw = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(raw.status(), 405);
}

#[tokio::test]
async fn introspection_endpoint() {
    let idp = start().await;
    let url = format!("{}/introspect", idp.issuer());
    let issued = post(
        &format!("{}/token", idp.issuer()),
        Some(("orders", "orders-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let token = issued.body["access_token"].as_str().unwrap();
    let basic = Some(("gateway", "gw secret&="));

    let answer = post(&url, basic, &[("token", token)]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["active"], true);
    assert_eq!(answer.body["client_id"], "orders");
    assert_eq!(answer.body["aud"], "billing");
    let answer = post(&url, basic, &[("token", "unknown")]).await;
    assert_eq!(answer.body, json!({"active": false}));
    idp.revoke(token);
    let answer = post(&url, basic, &[("token", token)]).await;
    assert_eq!(answer.body, json!({"active": false}));

    let answer = post(&url, None, &[("token", token)]).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let answer = post(&url, Some(("gateway", "wrong")), &[("token", token)]).await;
    assert_eq!(answer.status, 401);
    let answer = post(&url, basic, &[]).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // The library's introspection mode against it.
    let validator = JwtValidator::builder()
        .issuer(
            Issuer::new(idp.issuer())
                .audience("billing")
                .introspection(Introspection::new("gateway", "gw secret&=")),
        )
        .build()
        .unwrap();
    let fresh = post(
        &format!("{}/token", idp.issuer()),
        Some(("orders", "orders-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let fresh = fresh.body["access_token"].as_str().unwrap();
    assert_eq!(
        validator.validate(fresh).await.unwrap().subject(),
        Some("orders")
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let cases = [
        ("BIND", "not-an-address", "BIND"),
        ("DEV_ISSUER_URL", "ftp://x", "DEV_ISSUER_URL"),
        ("DEV_ISSUER_URL", "nonsense", "DEV_ISSUER_URL"),
        ("DEV_ISSUER_CLIENTS", "{", "DEV_ISSUER_CLIENTS"),
        (
            "DEV_ISSUER_CLIENTS",
            r#"[{"client_id":"a"}]"#,
            "DEV_ISSUER_CLIENTS",
        ),
        (
            "DEV_ISSUER_CLIENTS",
            r#"[{"client_id":"a","client_secret":"b","extra":1}]"#,
            "DEV_ISSUER_CLIENTS",
        ),
        (
            "DEV_ISSUER_CLIENTS",
            r#"[{"client_id":"","client_secret":"b"}]"#,
            "DEV_ISSUER_CLIENTS",
        ),
        (
            "DEV_ISSUER_CLIENTS",
            r#"[{"client_id":"a","client_secret":"b"},{"client_id":"a","client_secret":"c"}]"#,
            "listed twice",
        ),
        (
            "DEV_ISSUER_CLIENTS",
            r#"[{"client_id":"a","client_secret":"b","scopes":["x y"]}]"#,
            "space",
        ),
        (
            "DEV_ISSUER_USERS",
            r#"[{"username":"u"}]"#,
            "DEV_ISSUER_USERS",
        ),
        (
            "DEV_ISSUER_USERS",
            r#"[{"username":"u","password":"","sub":"s"}]"#,
            "must not be empty",
        ),
    ];
    let cases = cases
        .into_iter()
        .chain([("DEV_ISSUER_DPOP_NONCE", "yes", "neither on nor off")]);
    for (var, value, expected) in cases {
        let error = dev_issuer::Config::from_lookup(|k| (k == var).then(|| value.to_owned()))
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{var}={value}: {error}");
        assert!(!error.contains("\"b\""), "secrets are not echoed: {error}");
    }
    // The binary exits non-zero with the message.
    let output = Command::new(env!("CARGO_BIN_EXE_dev-issuer"))
        .env("BIND", "127.0.0.1:0")
        .env("DEV_ISSUER_CLIENTS", "[not json")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DEV_ISSUER_CLIENTS"), "{stderr}");
}

#[tokio::test]
async fn configured_issuer_url_is_used() {
    let config = dev_issuer::Config::from_lookup(|k| match k {
        "BIND" => Some("127.0.0.1:0".into()),
        "DEV_ISSUER_URL" => Some("https://dev.example".into()),
        _ => None,
    })
    .unwrap();
    let idp = dev_issuer::start(config).await.unwrap();
    assert_eq!(idp.issuer(), "https://dev.example");
    let doc: Value = reqwest::get(format!(
        "http://{}/.well-known/openid-configuration",
        idp.addr()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["issuer"], "https://dev.example");
    assert_eq!(doc["token_endpoint"], "https://dev.example/token");
}

/// A port that was free a moment ago, for a process that must bind it itself.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls discovery from the first instant, bounded in time; returns as soon
/// as it answers 200.
async fn first_discovery_answer(client: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "discovery never answered"
        );
        if let Ok(response) = client
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// What a caller that waited for discovery gets at once: a signing key and
/// its configured client.
async fn ready_the_moment_discovery_answers(client: &reqwest::Client, base: &str) {
    first_discovery_answer(client, base).await;
    let token = client
        .post(format!("{base}/token"))
        .basic_auth("orders", Some("orders-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = token.status().as_u16();
    let body: Value = token.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let jwks: Value = client
        .get(format!("{base}/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_serves_discovery_only_once_ready() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dev-issuer"))
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DEV_ISSUER_CLIENTS", CLIENTS)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ready_the_moment_discovery_answers(&client, &base),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    outcome.expect("bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_serves_discovery_only_once_clients_are_registered() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let env = [("BIND", bind.as_str()), ("DEV_ISSUER_CLIENTS", CLIENTS)];
    let config = dev_issuer::Config::from_lookup(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let client = reqwest::Client::new();
    let starting = tokio::spawn(dev_issuer::start(config));
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ready_the_moment_discovery_answers(&client, &base),
    )
    .await
    .expect("bounded in time");
    let _idp = starting.await.unwrap().unwrap();
}
