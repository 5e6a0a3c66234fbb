//! The client side of DPoP (RFC 9449) end to end over HTTP: `ClientCredentials`
//! and `TokenExchange` with a `DpopSigner` get tokens bound to its key from
//! the test issuer (through its nonce demand), and `AuthorizedClient` and
//! `InjectTokenLayer` call a real axum server whose `AuthnLayer` requires
//! DPoP and nonces.

mod common;

use axum::Router;
use axum::routing::get;
use common::discovery_validator;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tessera_authn::client::{
    AccessToken, AuthorizedClient, ClientCredentials, ClientError, DpopSigner, InjectTokenError,
    InjectTokenLayer, RetryPolicy, TokenExchange, TokenProvider, TokenRequest,
};
use tessera_authn::dpop::{DpopOptions, DpopPolicy};
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authn::{Algorithm, AuthnLayer, Principal};

async fn me(principal: Principal) -> axum::Json<Value> {
    axum::Json(json!({
        "sub": principal.subject(),
        "cnf": principal.confirmation(),
    }))
}

/// An API requiring DPoP with server nonces; counts the requests it saw.
struct Api {
    base: String,
    requests: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

async fn api(idp: &TestIssuer, options: DpopOptions) -> Api {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    let app = Router::new()
        .route("/me", get(me).post(me))
        .layer(AuthnLayer::new(discovery_validator(idp)).dpop(options))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                seen.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Api {
        base,
        requests,
        _task: task,
    }
}

async fn issuer() -> TestIssuer {
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(
        TestClient::new("orders", "s3cret")
            .scopes(["a", "b"])
            .audiences([idp.audience().to_owned()]),
    );
    idp
}

fn credentials(idp: &TestIssuer, signer: &DpopSigner) -> ClientCredentials {
    ClientCredentials::builder("orders", "s3cret")
        .discovery(idp.issuer())
        .audience(idp.audience())
        .scope("a")
        .retry(RetryPolicy::new(
            1,
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
        .dpop(signer.clone())
        .build()
        .unwrap()
}

fn required_with_nonces() -> DpopOptions {
    DpopOptions::new().policy(DpopPolicy::Require).nonces()
}

fn claims_of(token: &AccessToken) -> Value {
    use base64::Engine as _;
    let payload = token.secret().split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn client_credentials_get_tokens_bound_to_the_key_through_the_nonce_demand() {
    let idp = issuer().await;
    idp.demand_dpop_nonces(true);
    for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let signer = DpopSigner::generate(alg).unwrap();
        let cc = credentials(&idp, &signer);
        let before = idp.token_requests();
        let token = cc.token().await.unwrap();
        assert_eq!(token.scheme(), "DPoP");
        assert_eq!(claims_of(&token)["cnf"]["jkt"], signer.thumbprint());
        assert_eq!(
            token.dpop_signer().map(DpopSigner::thumbprint),
            Some(signer.thumbprint())
        );
        assert_eq!(
            idp.token_requests() - before,
            2,
            "one use_dpop_nonce answer, then the proof with the nonce"
        );
        // The nonce is remembered: the next token request needs no retry.
        let other = cc.for_request(TokenRequest::new().audience(idp.audience()).scope("b"));
        let before = idp.token_requests();
        let token = other.token().await.unwrap();
        assert_eq!(claims_of(&token)["scope"], "b");
        assert_eq!(idp.token_requests() - before, 1);
    }
}

#[tokio::test]
async fn a_server_that_answers_bearer_to_a_dpop_request_is_refused() {
    // A server that does not know DPoP ignores the proof and answers Bearer.
    let bearer_only = Router::new().route(
        "/token",
        axum::routing::post(|| async {
            axum::Json(json!({"access_token": "abc", "token_type": "Bearer", "expires_in": 60}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bearer_only).await.unwrap() });
    let signer = DpopSigner::generate(Algorithm::ES256).unwrap();
    let cc = ClientCredentials::builder("orders", "s3cret")
        .token_endpoint(&url)
        .dpop(signer)
        .build()
        .unwrap();
    let error = cc.token().await.unwrap_err();
    assert!(
        matches!(&error, ClientError::InvalidResponse(m) if m.contains("not DPoP")),
        "{error}"
    );
    // And a DPoP token is refused by a client without a key.
    let dpop_only = Router::new().route(
        "/token",
        axum::routing::post(|| async {
            axum::Json(json!({"access_token": "abc", "token_type": "DPoP", "expires_in": 60}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, dpop_only).await.unwrap() });
    let cc = ClientCredentials::builder("orders", "s3cret")
        .token_endpoint(&url)
        .build()
        .unwrap();
    assert!(matches!(
        cc.token().await,
        Err(ClientError::InvalidResponse(m)) if m.contains("not bearer")
    ));
}

#[tokio::test]
async fn token_exchange_gets_tokens_bound_to_the_key_that_an_api_requiring_dpop_accepts() {
    let idp = issuer().await;
    idp.demand_dpop_nonces(true);
    let user = idp
        .token()
        .subject("alice")
        .claim("scope", "a b")
        .sign_introspectable();
    let signer = DpopSigner::generate(Algorithm::ES256).unwrap();
    let exchange = TokenExchange::builder("orders", "s3cret")
        .discovery(idp.issuer())
        .dpop(signer.clone())
        .build()
        .unwrap();

    let before = idp.token_requests();
    let token = exchange
        .exchange(&user, idp.audience(), &["a"])
        .await
        .unwrap();
    assert_eq!(token.scheme(), "DPoP");
    let claims = claims_of(&token);
    assert_eq!(claims["cnf"]["jkt"], signer.thumbprint());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["act"]["sub"], "orders");
    assert_eq!(claims["scope"], "a");
    assert_eq!(
        token.dpop_signer().map(DpopSigner::thumbprint),
        Some(signer.thumbprint())
    );
    assert_eq!(
        idp.token_requests() - before,
        2,
        "one use_dpop_nonce answer, then the proof with the nonce"
    );

    // Cached per scope; the nonce is kept, so another scope costs one request.
    let before = idp.token_requests();
    let again = exchange
        .exchange(&user, idp.audience(), &["a"])
        .await
        .unwrap();
    assert_eq!(again.secret(), token.secret());
    let other = exchange
        .exchange(&user, idp.audience(), &["b"])
        .await
        .unwrap();
    assert_eq!(claims_of(&other)["scope"], "b");
    assert_eq!(idp.token_requests() - before, 1);

    // An API that requires DPoP and nonces takes the exchanged token with
    // the key's proofs, and sees the binding.
    let api = api(&idp, required_with_nonces()).await;
    let client = AuthorizedClient::new(reqwest::Client::new(), Fixed(token));
    let response = client
        .send(client.get(format!("{}/me", api.base)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["cnf"]["jkt"], signer.thumbprint());
}

#[tokio::test]
async fn a_token_exchange_answered_with_a_bearer_token_is_refused_when_a_key_was_given() {
    let bearer_only = Router::new().route(
        "/token",
        axum::routing::post(|| async {
            axum::Json(json!({
                "access_token": "abc",
                "token_type": "Bearer",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "expires_in": 60
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bearer_only).await.unwrap() });
    let with_key = TokenExchange::builder("orders", "s3cret")
        .token_endpoint(&url)
        .dpop(DpopSigner::generate(Algorithm::ES256).unwrap())
        .build()
        .unwrap();
    let error = with_key.exchange("subject", "api", &[]).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::InvalidResponse(m) if m.contains("not DPoP")),
        "{error}"
    );
    // Without a key, the same answer is the bearer token it says it is.
    let without = TokenExchange::builder("orders", "s3cret")
        .token_endpoint(&url)
        .build()
        .unwrap();
    let token = without.exchange("subject", "api", &[]).await.unwrap();
    assert_eq!((token.scheme(), token.secret()), ("Bearer", "abc"));
}

#[tokio::test]
async fn authorized_client_sends_proofs_and_follows_the_resource_servers_nonce() {
    let idp = issuer().await;
    let api = api(&idp, required_with_nonces()).await;
    let signer = DpopSigner::generate(Algorithm::ES256).unwrap();
    let client = AuthorizedClient::new(reqwest::Client::new(), credentials(&idp, &signer));

    let url = format!("{}/me?x=1", api.base);
    let response = client.send(client.get(&url)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["cnf"]["jkt"], signer.thumbprint());
    assert_eq!(
        api.requests.load(Ordering::SeqCst),
        2,
        "one use_dpop_nonce answer, then the proof with the nonce"
    );

    // The nonce is kept: later requests (a POST with a body too) go through
    // at once, each with a fresh proof (the API refuses replayed ones).
    for _ in 0..3 {
        let response = client.send(client.post(&url).body("hello")).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(api.requests.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn inject_token_layer_sends_proofs_and_follows_the_nonce() {
    use tower::ServiceExt as _;
    let idp = issuer().await;
    let api = api(&idp, required_with_nonces()).await;
    let signer = DpopSigner::generate(Algorithm::EdDSA).unwrap();
    let http = reqwest::Client::new();
    // A tower HTTP client over reqwest, as a service would build one.
    let client = tower::ServiceBuilder::new()
        .layer(InjectTokenLayer::new(credentials(&idp, &signer)))
        .service_fn(move |req: http::Request<String>| {
            let http = http.clone();
            async move {
                let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
                let res = http.execute(req).await?;
                let mut out = http::Response::builder().status(res.status());
                for (name, value) in res.headers() {
                    out = out.header(name, value);
                }
                Ok::<_, reqwest::Error>(out.body(res.text().await?).unwrap())
            }
        });
    let url = format!("{}/me", api.base);
    for expected_requests in [2, 3] {
        let request = http::Request::post(&url).body("hi".to_owned()).unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.body());
        let body: Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["cnf"]["jkt"], signer.thumbprint());
        assert_eq!(api.requests.load(Ordering::SeqCst), expected_requests);
    }

    // A bound token cannot be sent to a relative URI: no proof can name it.
    let request = http::Request::get("/me").body(String::new()).unwrap();
    let error = client.oneshot(request).await.unwrap_err();
    assert!(
        matches!(&error, InjectTokenError::Token(ClientError::Config(m)) if m.contains("absolute")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_bound_token_is_refused_as_bearer_and_without_its_key() {
    let idp = issuer().await;
    let api = api(&idp, DpopOptions::new()).await;
    let signer = DpopSigner::generate(Algorithm::ES256).unwrap();
    let token = credentials(&idp, &signer).token().await.unwrap();
    let url = format!("{}/me", api.base);

    // Stolen and sent as a bearer token: refused.
    let stolen = AccessToken::new(token.secret());
    let client = AuthorizedClient::new(reqwest::Client::new(), Fixed(stolen));
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 401);

    // Stolen and sent with a proof by another key: refused.
    let thief = DpopSigner::generate(Algorithm::ES256).unwrap();
    let client = AuthorizedClient::new(
        reqwest::Client::new(),
        Fixed(AccessToken::dpop_bound(token.secret(), thief)),
    );
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 401);

    // The holder of the key: accepted.
    let client = AuthorizedClient::new(reqwest::Client::new(), Fixed(token));
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 200);
}

/// A provider handing out one token.
struct Fixed(AccessToken);

impl TokenProvider for Fixed {
    fn token(&self) -> tessera_authn::client::BoxFuture<'_, Result<AccessToken, ClientError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}
