//! Outgoing tokens over real HTTP against the test issuer: client
//! credentials caching, refresh ahead, single flight, outages, the inject
//! layer and reqwest wrapper with their 401 retry, relay and exchange.

mod common;

use common::{trusted, validator_for};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tessera_authn::client::{
    AccessToken, AuthMethod, AuthorizedClient, ClientCredentials, ClientError, InjectTokenError,
    InjectTokenLayer, RefreshAhead, RetryPolicy, TokenExchange, TokenProvider, TokenRelay,
    TokenRequest,
};
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authn::{Issuer, JwtValidator, TokenTypes};

async fn issuer() -> TestIssuer {
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(
        TestClient::new("orders", "s3cret:with/odd chars")
            .scopes(["billing:read", "billing:write"])
            .audiences(["billing", "shipping"]),
    );
    idp
}

fn credentials(idp: &TestIssuer) -> ClientCredentials {
    ClientCredentials::builder("orders", "s3cret:with/odd chars")
        .discovery(idp.issuer())
        .audience("billing")
        .scope("billing:read")
        .retry(RetryPolicy::new(
            3,
            Duration::from_millis(10),
            Duration::from_millis(50),
        ))
        .build()
        .unwrap()
}

fn validator(idp: &TestIssuer, audience: &str) -> JwtValidator {
    JwtValidator::builder()
        .issuer(Issuer::new(idp.issuer()).audience(audience).discovery())
        .token_types(TokenTypes::Rfc9068)
        .build()
        .unwrap()
}

#[tokio::test]
async fn issued_tokens_validate_and_are_cached() {
    let idp = issuer().await;
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let cc = ClientCredentials::builder("orders", "s3cret:with/odd chars")
            .token_endpoint(&idp.token_url())
            .auth_method(method)
            .audience("billing")
            .scope("billing:read")
            .build()
            .unwrap();
        let before = idp.token_requests();
        let token = cc.token().await.unwrap();
        let principal = validator(&idp, "billing")
            .validate(token.secret())
            .await
            .unwrap();
        assert_eq!(principal.subject(), Some("orders"));
        assert_eq!(principal.claims().extra["scope"], "billing:read");
        assert_eq!(principal.claims().extra["client_id"], "orders");
        for _ in 0..10 {
            assert_eq!(cc.token().await.unwrap(), token);
        }
        assert_eq!(idp.token_requests(), before + 1, "{method:?}");
    }
}

#[tokio::test]
async fn cache_is_per_audience_and_scopes() {
    let idp = issuer().await;
    let billing = credentials(&idp);
    let shipping = billing.for_request(TokenRequest::new().audience("shipping"));
    let write = billing.for_request(
        TokenRequest::new()
            .audience("billing")
            .scope("billing:write"),
    );
    let a = billing.token().await.unwrap();
    let b = shipping.token().await.unwrap();
    let c = write.token().await.unwrap();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(idp.token_requests(), 3);
    // Same request, other handle: same cache entry.
    let again = billing.for_request(
        TokenRequest::new()
            .scope("billing:read")
            .audience("billing"),
    );
    assert_eq!(again.token().await.unwrap(), a);
    assert_eq!(idp.token_requests(), 3);
    assert!(
        validator(&idp, "shipping")
            .validate(b.secret())
            .await
            .is_ok()
    );
    assert!(
        validator(&idp, "shipping")
            .validate(a.secret())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_cause_one_token_request() {
    let idp = issuer().await;
    idp.set_token_delay(Duration::from_millis(200));
    let cc = credentials(&idp);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let cc = cc.clone();
            tokio::spawn(async move { cc.token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap());
    }
    assert_eq!(idp.token_requests(), 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

#[tokio::test]
async fn tokens_are_renewed_ahead_of_expiry() {
    let idp = issuer().await;
    idp.set_token_lifetime(Duration::from_secs(2));
    let cc = ClientCredentials::builder("orders", "s3cret:with/odd chars")
        .discovery(idp.issuer())
        // Renew after half the lifetime: at 1 s of 2 s.
        .refresh_ahead(RefreshAhead::new(0.5, Duration::ZERO))
        .build()
        .unwrap();
    let first = cc.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cc.token().await.unwrap(), first, "fresh: from the cache");
    assert_eq!(idp.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // In the refresh window, before expiry: renewed.
    let second = cc.token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(idp.token_requests(), 2);
    assert_eq!(cc.token().await.unwrap(), second);
    assert_eq!(idp.token_requests(), 2);
}

#[tokio::test]
async fn a_failed_renewal_keeps_serving_the_valid_token() {
    let idp = issuer().await;
    idp.set_token_lifetime(Duration::from_secs(3));
    let cc = ClientCredentials::builder("orders", "s3cret:with/odd chars")
        .discovery(idp.issuer())
        .refresh_ahead(RefreshAhead::new(0.1, Duration::ZERO))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let first = cc.token().await.unwrap();
    idp.fail_token_endpoint(Some(503));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cc.token().await.unwrap(), first);
    idp.fail_token_endpoint(None);
    assert_ne!(cc.token().await.unwrap(), first);
}

#[tokio::test]
async fn endpoint_down_then_back() {
    let idp = issuer().await;
    idp.fail_token_endpoint(Some(503));
    let cc = credentials(&idp);
    let error = cc.token().await.unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
    assert!(error.is_transient());
    // One try plus three retries.
    assert_eq!(idp.token_requests(), 4);
    idp.fail_token_endpoint(None);
    assert!(cc.token().await.is_ok());
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_endpoint_recovers() {
    let idp = Arc::new(issuer().await);
    idp.fail_token_endpoint(Some(500));
    let cc = ClientCredentials::builder("orders", "s3cret:with/odd chars")
        .discovery(idp.issuer())
        .retry(RetryPolicy::new(
            20,
            Duration::from_millis(20),
            Duration::from_millis(40),
        ))
        .build()
        .unwrap();
    let healer = Arc::clone(&idp);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        healer.fail_token_endpoint(None);
    });
    assert!(cc.token().await.is_ok());
    assert!(idp.token_requests() > 1);
}

#[tokio::test]
async fn oauth_errors_are_typed_and_not_retried() {
    let idp = issuer().await;
    let wrong_secret = ClientCredentials::builder("orders", "wrong")
        .discovery(idp.issuer())
        .build()
        .unwrap();
    let error = wrong_secret.token().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert!(matches!(error, ClientError::OAuth { status: 401, .. }));
    assert!(!error.to_string().contains("wrong"));
    assert_eq!(idp.token_requests(), 1);

    let bad_scope = credentials(&idp).for_request(TokenRequest::new().scope("admin"));
    assert_eq!(
        bad_scope.token().await.unwrap_err().oauth_error(),
        Some("invalid_scope")
    );
    let bad_audience = credentials(&idp).for_request(TokenRequest::new().audience("payroll"));
    assert_eq!(
        bad_audience.token().await.unwrap_err().oauth_error(),
        Some("invalid_target")
    );
}

#[tokio::test]
async fn discovery_failures_are_reported() {
    let idp = issuer().await;
    idp.set_discovery_issuer(Some("https://someone.else"));
    let error = credentials(&idp).token().await.unwrap_err();
    assert!(matches!(error, ClientError::Discovery(_)), "{error:?}");
    let unreachable = ClientCredentials::builder("orders", "s")
        .token_endpoint("http://127.0.0.1:9/token")
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    assert!(matches!(
        unreachable.token().await,
        Err(ClientError::Unavailable(_))
    ));
}

/// A downstream that accepts only tokens from `valid`, answering 401
/// `invalid_token` otherwise, and counts calls.
async fn downstream(
    valid: Arc<std::sync::Mutex<Option<String>>>,
    calls: Arc<AtomicUsize>,
) -> String {
    let handler = move |headers: HeaderMap, body: String| {
        let valid = Arc::clone(&valid);
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let sent = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            if sent.is_some() && sent == *valid.lock().unwrap() {
                (StatusCode::OK, HeaderMap::new(), format!("ok {body}"))
            } else {
                let mut h = HeaderMap::new();
                h.insert(
                    "www-authenticate",
                    r#"Bearer realm="api", error="invalid_token""#.parse().unwrap(),
                );
                (StatusCode::UNAUTHORIZED, h, String::new())
            }
        }
    };
    let app = Router::new()
        .route("/echo", post(handler.clone()))
        .route("/echo", get(move |h: HeaderMap| handler(h, String::new())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A provider handing out "old" until invalidated, then "new".
#[derive(Clone, Default)]
struct Rotating {
    invalidated: Arc<AtomicUsize>,
}

impl TokenProvider for Rotating {
    fn token(&self) -> tessera_authn::client::BoxFuture<'_, Result<AccessToken, ClientError>> {
        let token = if self.invalidated.load(Ordering::SeqCst) == 0 {
            "old"
        } else {
            "new"
        };
        Box::pin(async move { Ok(AccessToken::new(token)) })
    }
    fn invalidate(&self, _token: &AccessToken) {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn reqwest_wrapper_retries_once_after_invalid_token() {
    let valid = Arc::new(std::sync::Mutex::new(Some("new".to_owned())));
    let calls = Arc::new(AtomicUsize::new(0));
    let base = downstream(Arc::clone(&valid), Arc::clone(&calls)).await;
    let provider = Rotating::default();
    let client = AuthorizedClient::new(reqwest::Client::new(), provider.clone());
    let response = client
        .send(client.post(format!("{base}/echo")).body("payload"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "ok payload",
        "the body was replayed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(provider.invalidated.load(Ordering::SeqCst), 1);

    // Refused again: retried only once, the 401 comes back.
    *valid.lock().unwrap() = None;
    calls.store(0, Ordering::SeqCst);
    let response = client
        .send(client.get(format!("{base}/echo")))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(provider.invalidated.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn streaming_bodies_are_not_retried() {
    let valid = Arc::new(std::sync::Mutex::new(Some("new".to_owned())));
    let calls = Arc::new(AtomicUsize::new(0));
    let base = downstream(valid, Arc::clone(&calls)).await;
    let client = AuthorizedClient::new(reqwest::Client::new(), Rotating::default());
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from("x"))]);
    let response = client
        .send(
            client
                .post(format!("{base}/echo"))
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tower_layer_injects_and_retries_with_a_fresh_client_credentials_token() {
    let idp = issuer().await;
    let cc = credentials(&idp);
    let stale = cc.token().await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let refused = format!("Bearer {}", stale.secret());
    // A downstream that has revoked the cached token.
    let service = tower::ServiceBuilder::new()
        .layer(InjectTokenLayer::new(cc.clone()))
        .service_fn(move |req: http::Request<String>| {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut response = http::Response::new(format!("ok {}", req.body()));
            if req.headers()["authorization"] == refused.as_str() {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response.headers_mut().insert(
                    "www-authenticate",
                    r#"Bearer error="invalid_token""#.parse().unwrap(),
                );
            }
            async { Ok::<_, std::convert::Infallible>(response) }
        });
    use tower::ServiceExt as _;
    let request = http::Request::post("http://downstream/echo")
        .body("hello".to_owned())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "ok hello", "the body was replayed");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(idp.token_requests(), 2, "the refused token was replaced");
    let fresh = cc.token().await.unwrap();
    assert_ne!(fresh, stale);

    // The fresh token is used from now on, without retries.
    let request = http::Request::get("http://downstream/echo")
        .body(String::new())
        .unwrap();
    assert_eq!(service.oneshot(request).await.unwrap().status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn tower_layer_surfaces_token_errors_without_calling_the_service() {
    let idp = issuer().await;
    idp.fail_token_endpoint(Some(400));
    let cc = ClientCredentials::builder("orders", "nope")
        .discovery(idp.issuer())
        .build()
        .unwrap();
    let called = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&called);
    let service = tower::ServiceBuilder::new()
        .layer(InjectTokenLayer::new(cc))
        .service_fn(move |_req: http::Request<()>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
        });
    use tower::ServiceExt as _;
    let error = service.oneshot(http::Request::new(())).await.unwrap_err();
    assert!(matches!(error, InjectTokenError::Token(_)), "{error:?}");
    assert_eq!(called.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn relay_forwards_the_validated_callers_token() {
    let idp = issuer().await;
    let caller = idp.token().subject("alice").sign();
    let principal = validator_for(trusted(&idp).discovery())
        .validate(&caller)
        .await
        .unwrap();
    let valid = Arc::new(std::sync::Mutex::new(Some(caller.clone())));
    let calls = Arc::new(AtomicUsize::new(0));
    let base = downstream(valid, Arc::clone(&calls)).await;
    let client = AuthorizedClient::new(
        reqwest::Client::new(),
        TokenRelay::from_principal(&principal),
    );
    let response = client
        .send(client.get(format!("{base}/echo")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let claims: tessera_authn::Claims = serde_json::from_value(serde_json::json!({
        "iss": idp.issuer(), "exp": 1_000,
    }))
    .unwrap();
    let expired = tessera_authn::Principal::new(idp.issuer(), claims, "old.token.here");
    let relay = TokenRelay::from_principal(&expired);
    assert_eq!(
        relay.token().await.unwrap_err(),
        ClientError::SubjectExpired
    );
}

#[tokio::test]
async fn exchange_trades_the_callers_token_and_caches_per_subject_and_audience() {
    let idp = issuer().await;
    idp.add_client(TestClient::new("gateway", "gw").audiences(["comments", "users"]));
    let alice = idp
        .token()
        .subject("alice")
        .claim("scope", "read write")
        .sign_introspectable();
    let bob = idp
        .token()
        .subject("bob")
        .claim("scope", "read")
        .sign_introspectable();
    let exchange = TokenExchange::builder("gateway", "gw")
        .discovery(idp.issuer())
        .auth_method(AuthMethod::ClientSecretPost)
        .build()
        .unwrap();

    let a1 = exchange.exchange(&alice, "comments", &[]).await.unwrap();
    let principal = validator(&idp, "comments")
        .validate(a1.secret())
        .await
        .unwrap();
    assert_eq!(principal.subject(), Some("alice"));
    assert_eq!(principal.claims().extra["act"]["sub"], "gateway");
    assert_eq!(principal.claims().extra["client_id"], "gateway");
    assert_eq!(idp.token_requests(), 1);

    assert_eq!(
        exchange.exchange(&alice, "comments", &[]).await.unwrap(),
        a1
    );
    assert_eq!(idp.token_requests(), 1, "cached");
    let a2 = exchange.exchange(&alice, "users", &[]).await.unwrap();
    let b1 = exchange.exchange(&bob, "comments", &[]).await.unwrap();
    let a3 = exchange
        .exchange(&alice, "comments", &["read"])
        .await
        .unwrap();
    assert_eq!(idp.token_requests(), 4);
    assert_ne!(a1, a2);
    assert_ne!(a1, b1);
    assert_ne!(a1, a3);
    let bob_principal = validator(&idp, "comments")
        .validate(b1.secret())
        .await
        .unwrap();
    assert_eq!(bob_principal.subject(), Some("bob"));

    // Errors from the endpoint are typed.
    let error = exchange
        .exchange(&bob, "comments", &["write"])
        .await
        .unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_scope"));
    let error = exchange
        .exchange("not-a-token", "comments", &[])
        .await
        .unwrap_err();
    // RFC 8693 §2.2.2: an unacceptable subject token is `invalid_request`.
    assert_eq!(error.oauth_error(), Some("invalid_request"));
    let error = exchange.exchange(&alice, "payroll", &[]).await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_target"));

    // As a provider for a principal.
    let validated = validator_for(trusted(&idp).discovery())
        .validate(&alice)
        .await
        .unwrap();
    let provider = exchange.for_principal(&validated, "comments");
    assert_eq!(provider.token().await.unwrap(), a1);
}
