//! DPoP (RFC 9449) through `AuthnLayer` on a real axum server, called over
//! HTTP: every check of §4.3 refused with its own error, replays, nonces,
//! policies and challenges.

mod common;

use axum::Router;
use axum::routing::get;
use common::discovery_validator;
use serde_json::{Value, json};
use std::time::Duration;
use tessera_authn::dpop::{DpopOptions, DpopPolicy};
use tessera_authn::test_util::{DpopKey, TestIssuer};
use tessera_authn::{Algorithm, AuthnError, AuthnLayer, Principal};

async fn me(principal: Principal) -> axum::Json<Value> {
    axum::Json(json!({
        "sub": principal.subject(),
        "cnf": principal.confirmation(),
    }))
}

struct Server {
    base: String,
    _task: tokio::task::JoinHandle<()>,
}

async fn serve(layer: AuthnLayer) -> Server {
    let app = Router::new().route("/me", get(me).post(me)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { base, _task: task }
}

/// What a test looks at in an answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: Value,
}

impl Answer {
    /// The challenge of `scheme`.
    fn challenge(&self, scheme: &str) -> &str {
        self.challenges
            .iter()
            .find(|c| c.starts_with(&format!("{scheme} ")))
            .unwrap_or_else(|| panic!("no {scheme} challenge in {:?}", self.challenges))
    }

    /// Asserts a 401 carrying `error` as its description and `code` on
    /// the challenge of `scheme`.
    fn refused(&self, scheme: &str, code: &str, error: &AuthnError) {
        assert_eq!(self.status, 401, "{self:?}");
        let challenge = self.challenge(scheme);
        assert!(
            challenge.ends_with(&format!(r#"error="{code}", error_description="{error}""#)),
            "{challenge}"
        );
        assert_eq!(self.body["error"], code);
        assert_eq!(self.body["error_description"], error.to_string());
    }
}

async fn call(
    method: reqwest::Method,
    url: &str,
    authorization: Option<String>,
    proofs: &[String],
) -> Answer {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    for proof in proofs {
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
    let text = res.text().await.unwrap();
    Answer {
        status,
        challenges,
        nonce,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn get_dpop(url: &str, token: &str, proof: String) -> Answer {
    call(
        reqwest::Method::GET,
        url,
        Some(format!("DPoP {token}")),
        &[proof],
    )
    .await
}

fn proof_error(e: tessera_authn::DpopProofError) -> AuthnError {
    AuthnError::InvalidDpopProof(e)
}

struct Setup {
    idp: TestIssuer,
    server: Server,
    url: String,
    key: DpopKey,
    token: String,
}

async fn setup(options: DpopOptions) -> Setup {
    let idp = TestIssuer::start().await.unwrap();
    let server = serve(AuthnLayer::new(discovery_validator(&idp)).dpop(options)).await;
    let url = format!("{}/me", server.base);
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().subject("alice").bound_to(&key).sign();
    Setup {
        idp,
        server,
        url,
        key,
        token,
    }
}

use tessera_authn::DpopProofError as P;

#[tokio::test]
async fn a_bound_token_with_its_proof_is_accepted_and_every_request_needs_a_proof() {
    let s = setup(DpopOptions::new()).await;
    for _ in 0..3 {
        let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
        let ok = get_dpop(&s.url, &s.token, proof).await;
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(ok.body["sub"], "alice");
        assert_eq!(ok.body["cnf"]["jkt"], s.key.thumbprint());
    }
    // The token is in the validated-token cache now; without a proof it
    // is still refused.
    let none = call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("DPoP {}", s.token)),
        &[],
    )
    .await;
    none.refused("DPoP", "invalid_dpop_proof", &proof_error(P::Missing));
}

#[tokio::test]
async fn every_proof_algorithm_family_is_accepted() {
    let s = setup(DpopOptions::new()).await;
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = DpopKey::generate(alg);
        let token = s.idp.token().bound_to(&key).sign();
        let proof = key.proof("GET", &s.url).access_token(&token).sign();
        assert_eq!(get_dpop(&s.url, &token, proof).await.status, 200, "{alg:?}");
    }
}

#[tokio::test]
async fn a_proof_for_another_method_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let proof = s.key.proof("POST", &s.url).access_token(&s.token).sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::MethodMismatch),
    );
    // And for the right one, on the same route.
    let proof = s.key.proof("POST", &s.url).access_token(&s.token).sign();
    let ok = call(
        reqwest::Method::POST,
        &s.url,
        Some(format!("DPoP {}", s.token)),
        &[proof],
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_proof_for_another_uri_is_refused_query_and_fragment_aside() {
    let s = setup(DpopOptions::new()).await;
    for other in [
        format!("{}/other", s.server.base),
        format!("{}/me/", s.server.base),
        s.url.replace("http://", "https://"),
        s.url.replace("127.0.0.1", "localhost"),
    ] {
        let proof = s.key.proof("GET", &other).access_token(&s.token).sign();
        get_dpop(&s.url, &s.token, proof).await.refused(
            "DPoP",
            "invalid_dpop_proof",
            &proof_error(P::UriMismatch),
        );
    }
    // Query and fragment are not part of htu; the request's query is ignored.
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .claim("htu", format!("{}?a=1#x", s.url))
        .sign();
    assert_eq!(
        get_dpop(&format!("{}?b=2", s.url), &s.token, proof)
            .await
            .status,
        200
    );
    // Normalised: case of scheme and host, default port, dot segments.
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .claim(
            "htu",
            format!(
                "HTTP://{}/x/../me",
                s.server.base.trim_start_matches("http://")
            ),
        )
        .sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof).await.status, 200);
}

#[tokio::test]
async fn the_public_url_is_what_htu_must_name_behind_a_proxy() {
    let s = setup(
        DpopOptions::new()
            .public_url("https://api.example.com/shop")
            .unwrap(),
    )
    .await;
    let proof = s
        .key
        .proof("GET", "https://api.example.com/shop/me")
        .access_token(&s.token)
        .sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof).await.status, 200);
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::UriMismatch),
    );
}

#[tokio::test]
async fn a_wrong_or_missing_ath_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let other = s.idp.token().bound_to(&s.key).subject("bob").sign();
    let proof = s.key.proof("GET", &s.url).access_token(&other).sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::AccessTokenHashMismatch),
    );
    let proof = s.key.proof("GET", &s.url).sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::AccessTokenHashMismatch),
    );
}

#[tokio::test]
async fn a_proof_by_another_key_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let thief = DpopKey::generate(Algorithm::ES256);
    let proof = thief.proof("GET", &s.url).access_token(&s.token).sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::KeyMismatch),
    );
    // The thief's key in the header, the holder's signature: no.
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .header("jwk", Value::Object(thief.public_jwk().clone()))
        .sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::InvalidSignature),
    );
}

#[tokio::test]
async fn old_and_future_proofs_are_refused() {
    let s = setup(DpopOptions::new().proof_max_age(Duration::from_secs(60))).await;
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .issued_in_secs(-120)
        .sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::Expired),
    );
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .issued_in_secs(60)
        .sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::IssuedInFuture),
    );
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .issued_in_secs(-30)
        .sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof).await.status, 200);
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof.clone()).await.status, 200);
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::Replayed),
    );
}

#[tokio::test]
async fn none_and_hmac_algorithms_are_refused() {
    let s = setup(DpopOptions::new()).await;
    for alg in ["none", "HS256", "HS512", "nonsense"] {
        let proof = s
            .key
            .proof("GET", &s.url)
            .access_token(&s.token)
            .header("alg", alg)
            .sign();
        get_dpop(&s.url, &s.token, proof).await.refused(
            "DPoP",
            "invalid_dpop_proof",
            &proof_error(P::AlgorithmNotAllowed),
        );
    }
    // An alg outside the configured list.
    let s = setup(DpopOptions::new().algorithms([Algorithm::RS256]).unwrap()).await;
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    let refused = get_dpop(&s.url, &s.token, proof).await;
    refused.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::AlgorithmNotAllowed),
    );
    assert!(refused.challenge("DPoP").contains(r#"algs="RS256""#));
}

#[tokio::test]
async fn a_private_key_in_the_proof_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let mut jwk = s.key.public_jwk().clone();
    jwk.insert("d".into(), json!("c2VjcmV0"));
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .header("jwk", Value::Object(jwk))
        .sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::PrivateKey),
    );
}

#[tokio::test]
async fn two_proofs_are_refused() {
    let s = setup(DpopOptions::new()).await;
    let a = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    let b = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("DPoP {}", s.token)),
        &[a, b],
    )
    .await
    .refused("DPoP", "invalid_dpop_proof", &proof_error(P::Multiple));
}

#[tokio::test]
async fn malformed_proofs_are_refused() {
    let s = setup(DpopOptions::new()).await;
    let typ = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .header("typ", "JWT")
        .sign();
    get_dpop(&s.url, &s.token, typ).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::InvalidType),
    );
    let no_jti = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .without_claim("jti")
        .sign();
    get_dpop(&s.url, &s.token, no_jti).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::Malformed),
    );
    for junk in ["a.b", "a.b.c", "....", "%%%.%%%.%%%"] {
        get_dpop(&s.url, &s.token, junk.to_owned()).await.refused(
            "DPoP",
            "invalid_dpop_proof",
            &proof_error(P::Malformed),
        );
    }
    let no_jwk = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .header("jwk", json!("nope"))
        .sign();
    get_dpop(&s.url, &s.token, no_jwk).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::InvalidKey),
    );
}

#[tokio::test]
async fn nonces_are_demanded_handed_out_and_checked() {
    let s = setup(DpopOptions::new().nonces()).await;
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    let first = get_dpop(&s.url, &s.token, proof).await;
    first.refused("DPoP", "use_dpop_nonce", &AuthnError::UseDpopNonce);
    let nonce = first.nonce.clone().expect("a DPoP-Nonce header");
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .nonce(&nonce)
        .sign();
    let ok = get_dpop(&s.url, &s.token, proof).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.nonce.is_some(), "successes carry the current nonce");
    // A nonce of another server (stale or forged) is refused the same way.
    let other = setup(DpopOptions::new().nonces()).await;
    let proof = other
        .key
        .proof("GET", &other.url)
        .access_token(&other.token)
        .sign();
    let foreign = get_dpop(&other.url, &other.token, proof)
        .await
        .nonce
        .unwrap();
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .nonce(&foreign)
        .sign();
    let stale = get_dpop(&s.url, &s.token, proof).await;
    stale.refused("DPoP", "use_dpop_nonce", &AuthnError::UseDpopNonce);
    assert!(stale.nonce.is_some());
}

#[tokio::test]
async fn a_bound_token_presented_as_bearer_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let answer = call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("Bearer {}", s.token)),
        &[],
    )
    .await;
    answer.refused("Bearer", "invalid_token", &AuthnError::BoundToken);
    // Both schemes are offered.
    assert!(answer.challenge("DPoP").contains("algs=\""));
    // Even with a valid proof alongside.
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("Bearer {}", s.token)),
        &[proof],
    )
    .await
    .refused("Bearer", "invalid_token", &AuthnError::BoundToken);
    // And by a validator used on its own.
    let validator = discovery_validator(&s.idp);
    assert_eq!(
        validator.validate(&s.token).await.unwrap_err(),
        AuthnError::BoundToken
    );
}

#[tokio::test]
async fn a_bound_token_is_refused_when_dpop_is_off_or_not_configured() {
    let idp = TestIssuer::start().await.unwrap();
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().bound_to(&key).sign();
    for layer in [
        AuthnLayer::new(discovery_validator(&idp)),
        AuthnLayer::new(discovery_validator(&idp)).dpop(DpopOptions::new().policy(DpopPolicy::Off)),
    ] {
        let server = serve(layer).await;
        let url = format!("{}/me", server.base);
        let bearer = call(
            reqwest::Method::GET,
            &url,
            Some(format!("Bearer {token}")),
            &[],
        )
        .await;
        bearer.refused("Bearer", "invalid_token", &AuthnError::BoundToken);
        assert_eq!(bearer.challenges.len(), 1, "no DPoP challenge: {bearer:?}");
        let proof = key.proof("GET", &url).access_token(&token).sign();
        let dpop = get_dpop(&url, &token, proof).await;
        assert_eq!(dpop.status, 401);
        assert_eq!(
            dpop.challenges,
            [r#"Bearer realm="api""#],
            "DPoP is no credential here"
        );
    }
}

#[tokio::test]
async fn require_refuses_bearer_tokens_and_offers_only_dpop() {
    let s = setup(DpopOptions::new().policy(DpopPolicy::Require)).await;
    let unbound = s.idp.token().sign();
    let answer = call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("Bearer {unbound}")),
        &[],
    )
    .await;
    answer.refused("DPoP", "invalid_token", &AuthnError::DpopRequired);
    assert_eq!(answer.challenges.len(), 1, "{answer:?}");
    let missing = call(reqwest::Method::GET, &s.url, None, &[]).await;
    assert_eq!(missing.status, 401);
    assert!(
        missing.challenges[0].starts_with(r#"DPoP realm="api", algs=""#),
        "{missing:?}"
    );
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof).await.status, 200);
}

#[tokio::test]
async fn policies_apply_per_issuer() {
    let idp = TestIssuer::start().await.unwrap();
    let options = DpopOptions::new()
        .policy(DpopPolicy::Off)
        .issuer_policy(idp.issuer(), DpopPolicy::Require);
    let server = serve(AuthnLayer::new(discovery_validator(&idp)).dpop(options)).await;
    let url = format!("{}/me", server.base);
    let bearer = call(
        reqwest::Method::GET,
        &url,
        Some(format!("Bearer {}", idp.token().sign())),
        &[],
    )
    .await;
    assert_eq!(bearer.status, 401);
    assert_eq!(
        bearer.body["error_description"],
        AuthnError::DpopRequired.to_string()
    );
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().bound_to(&key).sign();
    let proof = key.proof("GET", &url).access_token(&token).sign();
    assert_eq!(get_dpop(&url, &token, proof).await.status, 200);
}

#[tokio::test]
async fn an_unbound_token_under_the_dpop_scheme_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let unbound = s.idp.token().sign();
    let proof = s.key.proof("GET", &s.url).access_token(&unbound).sign();
    get_dpop(&s.url, &unbound, proof).await.refused(
        "DPoP",
        "invalid_token",
        &AuthnError::TokenNotBound,
    );
    // As a bearer token it is fine under `allow`.
    let ok = call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("Bearer {unbound}")),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["cnf"], Value::Null);
}

#[tokio::test]
async fn an_unsupported_confirmation_method_is_refused() {
    let s = setup(DpopOptions::new()).await;
    let token = s.idp.token().claim("cnf", json!({"kid": "k1"})).sign();
    call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("Bearer {token}")),
        &[],
    )
    .await
    .refused(
        "Bearer",
        "invalid_token",
        &AuthnError::UnsupportedConfirmation,
    );
}

/// A replay store that cannot answer.
#[derive(Debug)]
struct BrokenStore;

impl tessera_authn::dpop::ReplayStore for BrokenStore {
    fn first_use(&self, _key: [u8; 32], _until: i64) -> tessera_authn::dpop::ReplayFuture<'_> {
        Box::pin(async {
            Err(tessera_authn::dpop::ReplayStoreError(
                "connection refused".into(),
            ))
        })
    }
}

#[tokio::test]
async fn an_unavailable_replay_store_fails_closed_with_503() {
    let s = setup(DpopOptions::new().replay_store(BrokenStore)).await;
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    let answer = get_dpop(&s.url, &s.token, proof).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.challenges.is_empty());
    assert_eq!(answer.body["error"], "temporarily_unavailable");
    // Bearer tokens do not touch the store.
    let unbound = s.idp.token().sign();
    let ok = call(
        reqwest::Method::GET,
        &s.url,
        Some(format!("Bearer {unbound}")),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn a_proof_checked_while_keys_are_fetched_is_still_checked() {
    // The first request waits for discovery and JWKS (the deferred path);
    // its proof is checked there too.
    let s = setup(DpopOptions::new()).await;
    let thief = DpopKey::generate(Algorithm::ES256);
    let proof = thief.proof("GET", &s.url).access_token(&s.token).sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::KeyMismatch),
    );
    let proof = s.key.proof("GET", &s.url).access_token(&s.token).sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof.clone()).await.status, 200);
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::Replayed),
    );
}

#[tokio::test]
async fn an_introspected_token_with_cnf_is_bound_too() {
    use tessera_authn::introspection::Introspection;
    use tessera_authn::test_util::TestClient;
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(TestClient::new("orders-api", "s3cret"));
    let validator = tessera_authn::JwtValidator::builder()
        .issuer(
            tessera_authn::Issuer::new(idp.issuer())
                .audience(idp.audience())
                .introspection(Introspection::new("orders-api", "s3cret")),
        )
        .build()
        .unwrap();
    let server = serve(AuthnLayer::new(validator).dpop(DpopOptions::new())).await;
    let url = format!("{}/me", server.base);
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().subject("acme").bound_to(&key).opaque();
    call(
        reqwest::Method::GET,
        &url,
        Some(format!("Bearer {token}")),
        &[],
    )
    .await
    .refused("Bearer", "invalid_token", &AuthnError::BoundToken);
    let proof = key.proof("GET", &url).access_token(&token).sign();
    let ok = get_dpop(&url, &token, proof).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["cnf"]["jkt"], key.thumbprint());
}

#[tokio::test]
async fn the_test_issuer_binds_tokens_requested_with_a_proof() {
    use tessera_authn::test_util::TestClient;
    let idp = TestIssuer::start().await.unwrap();
    idp.add_client(TestClient::new("svc", "s3cret"));
    let key = DpopKey::generate(Algorithm::ES256);
    let request = |proof: Option<String>| {
        let mut req = reqwest::Client::new()
            .post(idp.token_url())
            .basic_auth("svc", Some("s3cret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials");
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        req.send()
    };
    let res = request(Some(key.proof("POST", &idp.token_url()).sign()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();

    let server = serve(AuthnLayer::new(discovery_validator(&idp)).dpop(DpopOptions::new())).await;
    let url = format!("{}/me", server.base);
    let proof = key.proof("GET", &url).access_token(&token).sign();
    let ok = get_dpop(&url, &token, proof).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["cnf"]["jkt"], key.thumbprint());

    // A proof for another URL: 400 invalid_dpop_proof, no token.
    let res = request(Some(key.proof("POST", &url).sign())).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof");
    // No proof: a bearer token.
    let text = request(None).await.unwrap().text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn a_fractional_iat_is_a_numeric_date_and_a_string_is_not() {
    let s = setup(DpopOptions::new()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .claim("iat", now - 0.5)
        .sign();
    assert_eq!(get_dpop(&s.url, &s.token, proof).await.status, 200);
    let proof = s
        .key
        .proof("GET", &s.url)
        .access_token(&s.token)
        .claim("iat", "now")
        .sign();
    get_dpop(&s.url, &s.token, proof).await.refused(
        "DPoP",
        "invalid_dpop_proof",
        &proof_error(P::Malformed),
    );
}
