//! The guards as plain tower middleware around a `service_fn`.

mod common;

use bytes::Bytes;
use common::{ISSUER, TOKEN, principal};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_authn::{Claims, Principal};
use tessera_authz::permissions::{KeycloakClientRoles, KeycloakRealmRoles};
use tessera_authz::policy;
use tessera_authz::{
    Rejection, Require, RequireLayer, RequireRoles, RequireScopes, RequireService,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// An inner service that counts its calls and answers 200 "ok".
fn counting() -> (
    Arc<AtomicUsize>,
    impl Service<Request<String>, Response = Response<Bytes>, Error = Infallible, Future: Send> + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |_req: Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Bytes::from("ok"))) }
    });
    (calls, svc)
}

fn request_as(principal: Option<Principal>) -> Request<String> {
    let mut req = Request::builder()
        .uri("/orders/7")
        .body(String::new())
        .unwrap();
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    req
}

fn json_body(res: &Response<Bytes>) -> Value {
    serde_json::from_slice(res.body()).expect("JSON body")
}

#[tokio::test]
async fn missing_principal_is_401_with_bare_bearer_challenge() {
    let (calls, inner) = counting();
    let svc = RequireScopes::all(["orders:read"]).layer(inner);
    let res = svc.oneshot(request_as(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        json_body(&res),
        json!({ "error": "unauthorized", "error_description": "authentication required" })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_scope_is_403_with_insufficient_scope_challenge() {
    let (calls, inner) = counting();
    let svc = RequireScopes::all(["orders:read", "orders:write"]).layer(inner);
    let res = svc
        .oneshot(request_as(Some(principal(
            json!({ "scope": "orders:read" }),
        ))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="orders:read orders:write""#
    );
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        json_body(&res),
        json!({
            "error": "insufficient_scope",
            "error_description": "the token lacks a required scope",
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn granted_scopes_reach_the_inner_service() {
    let (calls, inner) = counting();
    let svc = RequireScopes::all(["orders:read", "orders:write"]).layer(inner);
    let res = svc
        .oneshot(request_as(Some(principal(
            json!({ "scope": "orders:write orders:read" }),
        ))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn any_scope_guard_needs_one_of_its_scopes() {
    let (_, inner) = counting();
    let svc = RequireScopes::any(["orders:read", "orders:admin"]).layer(inner);
    let ok = svc
        .clone()
        .oneshot(request_as(Some(principal(
            json!({ "scp": ["orders:admin"] }),
        ))))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let denied = svc
        .oneshot(request_as(Some(principal(
            json!({ "scope": "orders:administrator" }),
        ))))
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        denied.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="orders:read orders:admin""#
    );
}

#[tokio::test]
async fn scope_guard_rejects_a_longer_scope_with_the_same_prefix() {
    let (calls, inner) = counting();
    let svc = RequireScopes::all(["admin"]).layer(inner);
    for scope in ["administrator", "Admin", "admin:read", "sysadmin"] {
        let res = svc
            .clone()
            .oneshot(request_as(Some(principal(json!({ "scope": scope })))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{scope}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn role_guard_reads_keycloak_roles_and_does_not_reveal_them() {
    let (calls, inner) = counting();
    let svc = RequireRoles::all(["admin"])
        .from(KeycloakRealmRoles)
        .layer(inner);
    let admin = principal(json!({ "realm_access": { "roles": ["admin"] } }));
    let res = svc.clone().oneshot(request_as(Some(admin))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // `roles: ["admin"]` is not a Keycloak realm role.
    let plain = principal(json!({ "roles": ["admin"] }));
    let res = svc.oneshot(request_as(Some(plain))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope""#
    );
    assert!(!String::from_utf8_lossy(res.body()).contains("admin"));
    assert_eq!(json_body(&res)["error"], "insufficient_scope");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn any_role_guard_reads_keycloak_client_roles() {
    let (_, inner) = counting();
    let svc = RequireRoles::any(["refunder", "admin"])
        .from(KeycloakClientRoles::new("orders-api"))
        .layer(inner);
    let refunder =
        principal(json!({ "resource_access": { "orders-api": { "roles": ["refunder"] } } }));
    assert_eq!(
        svc.clone()
            .oneshot(request_as(Some(refunder)))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let other_client =
        principal(json!({ "resource_access": { "billing": { "roles": ["refunder"] } } }));
    assert_eq!(
        svc.oneshot(request_as(Some(other_client)))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn policy_guard_applies_combinators_and_closures() {
    let (_, inner) = counting();
    let svc = Require::policy(policy::any((
        policy::scopes_all(["orders:admin"]),
        policy::all((policy::scopes_all(["orders:read"]), |p: &Principal| {
            p.subject() == Some("alice")
        })),
    )))
    .layer(inner);
    let call = |extra: Value| svc.clone().oneshot(request_as(Some(principal(extra))));
    assert_eq!(
        call(json!({ "scope": "orders:admin" }))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(json!({ "scope": "orders:read" }))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Bob has `orders:read` but is not alice: only `orders:admin` would help.
    let res = call(json!({ "scope": "orders:read", "sub": "bob" }))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="orders:admin""#
    );
    // Without scopes, either scope is a way in: the challenge lists both.
    let res = call(json!({})).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="orders:admin orders:read""#
    );
}

#[tokio::test]
async fn not_policy_guard_denies_what_the_inner_policy_allows() {
    let (_, inner) = counting();
    let svc = Require::policy(policy::not(policy::scopes_any(["guest"]))).layer(inner);
    let guest = principal(json!({ "scope": "guest" }));
    assert_eq!(
        svc.clone()
            .oneshot(request_as(Some(guest)))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let member = principal(json!({ "scope": "member" }));
    assert_eq!(
        svc.oneshot(request_as(Some(member)))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn authenticated_guard_only_needs_a_principal() {
    let (_, inner) = counting();
    let svc = Require::authenticated().layer(inner);
    assert_eq!(
        svc.clone()
            .oneshot(request_as(Some(principal(json!({})))))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        svc.oneshot(request_as(None)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn empty_requirement_guard_denies_everyone() {
    let (calls, inner) = counting();
    let none: Vec<String> = Vec::new();
    let svc = RequireScopes::all(none).layer(inner);
    let res = svc
        .oneshot(request_as(Some(principal(json!({ "scope": "a b c" })))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope""#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn empty_body_guard_works_with_default_only_bodies() {
    use http_body_util::Empty;
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let svc = RequireScopes::all(["a"]).empty_body().layer(inner);
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(principal(json!({ "scope": "b" })));
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="a""#
    );
    assert!(!res.headers().contains_key(CONTENT_TYPE));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn render_with_builds_custom_rejections() {
    let (_, inner) = counting();
    let svc = RequireScopes::all(["a"])
        .render_with(|rejection: Rejection| {
            let mut res = Response::new(Bytes::from(format!(
                "problem: {}",
                rejection.status().as_u16()
            )));
            *res.status_mut() = rejection.status();
            res
        })
        .layer(inner);
    let res = svc
        .clone()
        .oneshot(request_as(Some(principal(json!({})))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.body(), "problem: 403");
    let res = svc.oneshot(request_as(None)).await.unwrap();
    assert_eq!(res.body(), "problem: 401");
}

#[derive(Debug, PartialEq)]
struct InnerError;

#[tokio::test]
async fn inner_errors_pass_through_unchanged() {
    let inner = service_fn(|_req: Request<String>| async { Err::<Response<Bytes>, _>(InnerError) });
    let svc = RequireScopes::all(["a"]).layer(inner);
    let err = svc
        .clone()
        .oneshot(request_as(Some(principal(json!({ "scope": "a" })))))
        .await
        .unwrap_err();
    assert_eq!(err, InnerError);
    // A denial is a response, not an error, even when the inner service fails.
    let res = svc
        .oneshot(request_as(Some(principal(json!({})))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn poll_ready_errors_of_the_inner_service_pass_through() {
    #[derive(Debug)]
    struct NeverReady;
    impl Service<Request<String>> for NeverReady {
        type Response = Response<Bytes>;
        type Error = InnerError;
        type Future = std::future::Ready<Result<Response<Bytes>, InnerError>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), InnerError>> {
            std::task::Poll::Ready(Err(InnerError))
        }
        fn call(&mut self, _: Request<String>) -> Self::Future {
            std::future::ready(Err(InnerError))
        }
    }
    let mut svc = RequireScopes::all(["a"]).layer(NeverReady);
    assert_eq!(svc.ready().await.unwrap_err(), InnerError);
}

#[derive(serde::Deserialize, Clone, Debug)]
struct MyClaims {
    #[serde(default)]
    groups: Vec<String>,
}

fn my_principal(groups: &[&str]) -> Principal<MyClaims> {
    let claims: Claims<MyClaims> = serde_json::from_value(
        json!({ "iss": ISSUER, "sub": "alice", "exp": 1_900_000_000, "groups": groups }),
    )
    .unwrap();
    Principal::new(ISSUER, claims, TOKEN)
}

#[tokio::test]
async fn own_claims_types_are_guarded_through_their_mapping() {
    let (_, inner) = counting();
    let groups = |c: &Claims<MyClaims>, p: &str| c.extra.groups.iter().any(|g| g == p);
    let svc = RequireRoles::all(["ops"]).from(groups).layer(inner);
    let mut req = request_as(None);
    req.extensions_mut().insert(my_principal(&["ops"]));
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    let mut req = request_as(None);
    req.extensions_mut().insert(my_principal(&["dev"]));
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // A principal of the default claims type is not the one this guard reads.
    let res = svc
        .oneshot(request_as(Some(principal(json!({ "groups": ["ops"] })))))
        .await;
    assert_eq!(res.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn principal_of_another_claims_type_counts_as_missing() {
    let (calls, inner) = counting();
    let svc = Require::authenticated().layer(inner);
    let mut req = request_as(None);
    req.extensions_mut().insert(my_principal(&["ops"]));
    assert_eq!(
        svc.oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn explicit_claims_type_on_the_layer() {
    let (_, inner) = counting();
    let layer = RequireLayer::<_, MyClaims>::new(policy::subject_is("alice"));
    let svc = layer.layer(inner);
    let mut req = request_as(None);
    req.extensions_mut().insert(my_principal(&[]));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[test]
fn layer_and_service_expose_their_parts() {
    let layer = RequireScopes::all(["a", "b"]);
    let debug = format!("{layer:?}");
    assert!(
        debug.contains("RequireLayer") && debug.contains("\"a\""),
        "{debug}"
    );
    assert_eq!(layer.policy().required().collect::<Vec<_>>(), ["a", "b"]);

    let mut svc: RequireService<u8, _> = RequireService::new(7_u8, policy::authenticated());
    assert_eq!(*svc.get_ref(), 7);
    *svc.get_mut() = 8;
    assert_eq!(svc.clone().into_inner(), 8);
    let _layer: RequireLayer<_> = RequireService::<(), _>::layer(policy::authenticated());
}
