//! `AuthnLayer` in front of a real axum server, called over HTTP.

mod common;

use common::discovery_validator;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{AuthnLayer, Claims, Principal};

async fn me(principal: Principal) -> String {
    principal.subject().unwrap_or_default().to_owned()
}

async fn maybe(principal: Option<Principal>) -> String {
    principal.map_or_else(
        || "anonymous".to_owned(),
        |p| p.subject().unwrap_or_default().to_owned(),
    )
}

async fn claims(claims: Claims) -> axum::Json<Value> {
    axum::Json(serde_json::to_value(claims).unwrap())
}

/// The `WWW-Authenticate` challenge of a refusal.
fn www_authenticate(headers: &http::HeaderMap) -> &str {
    headers["www-authenticate"].to_str().unwrap()
}

struct Server {
    base: String,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve(layer: AuthnLayer) -> Server {
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/claims", get(claims))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { base, _task: task }
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_its_principal() {
    let idp = TestIssuer::start().await.unwrap();
    let server = serve(AuthnLayer::new(discovery_validator(&idp))).await;
    let client = reqwest::Client::new();
    let token = idp.token().subject("alice").claim("scope", "read").sign();
    // The first request waits for discovery + JWKS; later ones are served from memory.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let res = client
            .get(format!("{}/me", server.base))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "alice");
    }
    let res = client
        .get(format!("{}/claims", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["scope"], "read");
    assert_eq!(body["iss"], idp.issuer());
}

#[tokio::test]
async fn missing_token_gets_a_challenge_without_error_code() {
    let idp = TestIssuer::start().await.unwrap();
    let server = serve(AuthnLayer::new(discovery_validator(&idp)).realm("orders")).await;
    let res = reqwest::get(format!("{}/me", server.base)).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="orders""#
    );
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn invalid_tokens_get_rfc6750_errors_that_never_echo_the_token() {
    let idp = TestIssuer::start().await.unwrap();
    let server = serve(AuthnLayer::new(discovery_validator(&idp))).await;
    let client = reqwest::Client::new();
    let expired = idp
        .token()
        .subject("secret-subject-value")
        .expires_in_secs(-3600)
        .sign();
    let res = client
        .get(format!("{}/me", server.base))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        r#"Bearer realm="api", error="invalid_token", error_description="token expired""#
    );
    let body = res.text().await.unwrap();
    assert!(
        !body.contains(&expired) && !body.contains("secret-subject-value"),
        "{body}"
    );
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "invalid_token");

    let wrong_aud = idp.token().audience("other").sign();
    let res = client
        .get(format!("{}/me", server.base))
        .bearer_auth(&wrong_aud)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(www_authenticate(res.headers()).contains("audience not accepted"));
}

#[tokio::test]
async fn malformed_and_oversized_authorization_headers() {
    let idp = TestIssuer::start().await.unwrap();
    let server = serve(AuthnLayer::new(discovery_validator(&idp))).await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{}/me", server.base))
        .header("authorization", "Bearer a b c")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(www_authenticate(res.headers()).contains(r#"error="invalid_request""#));
    let huge = format!("Bearer {}", "a".repeat(20_000));
    let res = client
        .get(format!("{}/me", server.base))
        .header("authorization", huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(www_authenticate(res.headers()).contains("token too large"));
    let res = client
        .get(format!("{}/me", server.base))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "no key fetch for requests without a usable token"
    );
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let idp = TestIssuer::start().await.unwrap();
    let server = serve(AuthnLayer::optional(discovery_validator(&idp))).await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{}/maybe", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "anonymous");
    let res = client
        .get(format!("{}/me", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the Principal extractor rejects anonymous requests"
    );
    let token = idp.token().subject("bob").sign();
    let res = client
        .get(format!("{}/maybe", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "bob");
    let res = client
        .get(format!("{}/maybe", server.base))
        .bearer_auth(idp.token().expires_in_secs(-999).sign())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "an invalid token is not downgraded to anonymous"
    );
}

#[tokio::test]
async fn token_from_a_cookie() {
    let idp = TestIssuer::start().await.unwrap();
    let server =
        serve(AuthnLayer::new(discovery_validator(&idp)).token_from_cookie("access_token")).await;
    let token = idp.token().subject("carol").sign();
    let res = reqwest::Client::new()
        .get(format!("{}/me", server.base))
        .header("cookie", format!("theme=dark; access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "carol");
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after() {
    let idp = TestIssuer::start().await.unwrap();
    idp.fail_jwks(Some(500));
    let server = serve(AuthnLayer::new(discovery_validator(&idp))).await;
    let res = reqwest::Client::new()
        .get(format!("{}/me", server.base))
        .bearer_auth(idp.token().sign())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
}

/// A tonic server's services answer `Response<tonic::body::Body>`, which has
/// no `From<Bytes>`: the gRPC mode must fit it and answer as gRPC does.
#[tokio::test]
async fn grpc_mode_fits_tonic_bodies_and_answers_with_grpc_status() {
    use tower::{ServiceBuilder, ServiceExt};

    let idp = TestIssuer::start().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(
            AuthnLayer::new(discovery_validator(&idp))
                .realm("orders")
                .grpc(),
        )
        .service_fn(|req: http::Request<tonic::body::Body>| async move {
            let who = req
                .extensions()
                .get::<Principal>()
                .and_then(|p| p.subject().map(str::to_owned));
            let mut res = http::Response::new(tonic::body::Body::empty());
            res.headers_mut()
                .insert("x-subject", who.unwrap_or_default().parse().unwrap());
            Ok::<_, std::convert::Infallible>(res)
        });
    let request = |token: Option<&str>| {
        let mut req = http::Request::new(tonic::body::Body::empty());
        if let Some(token) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        req
    };

    let res = service.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(res.status(), http::StatusCode::OK, "gRPC answers in-band");
    assert_eq!(res.headers()["grpc-status"], "16", "UNAUTHENTICATED");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="orders""#
    );
    assert!(
        res.headers().get("x-subject").is_none(),
        "the service was not called"
    );

    let expired = idp.token().expires_in_secs(-3600).sign();
    let res = service
        .clone()
        .oneshot(request(Some(&expired)))
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "16");
    let message = res.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("expired"), "{message}");
    assert!(www_authenticate(res.headers()).contains(r#"error="invalid_token""#));

    let token = idp.token().subject("alice").sign();
    let res = service.oneshot(request(Some(&token))).await.unwrap();
    assert!(res.headers().get("grpc-status").is_none());
    assert_eq!(res.headers()["x-subject"], "alice");
}
