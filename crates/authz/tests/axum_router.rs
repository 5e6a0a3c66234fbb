//! Guards as axum route layers in a real `Router`, and `Forbidden` from handlers.

mod common;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, put};
use axum::{Extension, Router};
use common::principal;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera_authn::Principal;
use tessera_authz::permissions::KeycloakRealmRoles;
use tessera_authz::{Forbidden, Rejection, RequireRoles, RequireScopes, ensure, policy};
use tower::ServiceExt;

fn app() -> Router {
    Router::new()
        .route("/admin", get(|| async { "admin area" }))
        .route_layer(RequireScopes::all(["admin"]))
        .route(
            "/reports",
            get(|| async { "reports" })
                .route_layer(RequireRoles::any(["auditor"]).from(KeycloakRealmRoles)),
        )
        .route("/comments/{author}", put(edit_comment))
        .route("/healthz", get(|| async { "ok" }))
}

async fn edit_comment(
    Extension(principal): Extension<Principal>,
    Path(author): Path<String>,
) -> Result<&'static str, Forbidden> {
    ensure(
        &principal,
        policy::with_reason(
            "only the author may edit a comment",
            policy::subject_is(&author),
        ),
    )?;
    Ok("edited")
}

/// Sends `req` to the app, with `principal` in the extensions as the authn
/// layer would put it.
async fn send(principal: Option<Principal>, req: Request<Body>) -> Response<Body> {
    let app = match principal {
        Some(p) => app().layer(Extension(p)),
        None => app(),
    };
    app.oneshot(req).await.unwrap()
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn body_json(res: Response<Body>) -> Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).expect("JSON body")
}

async fn body_text(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn route_layer_lets_the_right_scope_through() {
    let res = send(
        Some(principal(json!({ "scope": "read admin" }))),
        get_req("/admin"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "admin area");
}

#[tokio::test]
async fn route_layer_answers_403_with_the_scope_challenge() {
    let res = send(
        Some(principal(json!({ "scope": "administrator" }))),
        get_req("/admin"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="admin""#
    );
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        body_json(res).await,
        json!({ "error": "insufficient_scope", "error_description": "the token lacks a required scope" })
    );
}

#[tokio::test]
async fn route_layer_answers_401_without_a_principal() {
    let res = send(None, get_req("/admin")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body_json(res).await["error"], "unauthorized");
}

#[tokio::test]
async fn routes_added_after_the_route_layer_stay_open() {
    let res = send(None, get_req("/healthz")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Unknown paths are 404, not 401: route layers only wrap matched routes.
    let res = send(None, get_req("/nowhere")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn method_router_layer_guards_one_route_by_role() {
    let auditor = principal(json!({ "realm_access": { "roles": ["auditor"] } }));
    assert_eq!(
        send(Some(auditor), get_req("/reports")).await.status(),
        StatusCode::OK
    );
    // The admin scope guards /admin only, not /reports.
    let admin = principal(json!({ "scope": "admin" }));
    let res = send(Some(admin), get_req("/reports")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope""#
    );
    assert_eq!(
        send(None, get_req("/reports")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn handler_lets_the_author_edit_the_comment() {
    let req = Request::put("/comments/alice").body(Body::empty()).unwrap();
    let res = send(Some(principal(json!({}))), req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "edited");
}

#[tokio::test]
async fn handler_forbidden_renders_as_403() {
    let req = Request::put("/comments/bob").body(Body::empty()).unwrap();
    let res = send(Some(principal(json!({}))), req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope""#
    );
    assert_eq!(
        body_json(res).await,
        json!({ "error": "insufficient_scope", "error_description": "only the author may edit a comment" })
    );
}

#[tokio::test]
async fn router_wide_layer_guards_every_route() {
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .layer(RequireScopes::any(["x"]))
        .layer(Extension(principal(json!({ "scope": "y" }))));
    for path in ["/a", "/b"] {
        let res = app.clone().oneshot(get_req(path)).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn rejection_is_an_axum_response() {
    use axum::response::IntoResponse;
    let res = Rejection::Unauthenticated.into_response();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
    let res = Rejection::from(Forbidden::new("no").with_scopes(["s"])).into_response();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", scope="s""#
    );
    assert_eq!(body_json(res).await["error_description"], "no");
}
