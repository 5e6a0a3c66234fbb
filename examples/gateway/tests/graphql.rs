//! The gateway over real HTTP, with the user and comment services played by
//! small axum servers that honour their documented contracts.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_authn::test_util::TestIssuer;

#[derive(Default)]
struct Seen {
    user_requests: Vec<(Option<String>, String)>,
    comment_auth: Vec<Option<String>>,
}

type Shared = Arc<Mutex<Seen>>;

fn auth(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn users(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let ids = q.get("ids").cloned().unwrap_or_default();
    seen.lock()
        .unwrap()
        .user_requests
        .push((auth(&headers), ids.clone()));
    let known = HashMap::from([("u1", "Alice"), ("u2", "Bob")]);
    let users: Vec<Value> = ids
        .split(',')
        .filter_map(|id| {
            known
                .get(id)
                .map(|name| json!({"id": id, "display_name": name}))
        })
        .collect();
    Json(Value::Array(users))
}

async fn comments(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Path(post): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    seen.lock().unwrap().comment_auth.push(auth(&headers));
    match post.as_str() {
        "p1" => Ok(Json(json!([
            {"id": "c1", "text": "first", "author": {"id": "u1", "display_name": "stale name"}},
            {"id": "c2", "text": "second", "author": {"id": "u2", "display_name": null}},
            {"id": "c3", "text": "third", "author": {"id": "u1", "display_name": "Alice"}},
            {"id": "c4", "text": "by a user the user service no longer knows", "author": {"id": "u9", "display_name": null}},
            {"id": "c5", "text": "by a deleted user", "author": null},
        ]))),
        "broken" => Err(StatusCode::INTERNAL_SERVER_ERROR),
        _ => Ok(Json(json!([]))),
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

struct Setup {
    idp: TestIssuer,
    gateway: String,
    seen: Shared,
}

async fn setup() -> Setup {
    let idp = TestIssuer::start().await.unwrap();
    let seen = Shared::default();
    let downstream = Router::new()
        .route("/users", get(users))
        .route("/posts/{post}/comments", get(comments))
        .with_state(Arc::clone(&seen));
    let base = serve(downstream).await;
    let validator = idp.validator();
    let app = gateway::app(
        validator,
        gateway::Downstream::new(base.parse().unwrap(), base.parse().unwrap()),
    );
    let gateway = serve(app).await;
    Setup { idp, gateway, seen }
}

async fn query(s: &Setup, token: Option<&str>, q: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/graphql", s.gateway))
        .header("content-type", "application/json")
        .body(json!({ "query": q }).to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const COMMENTS: &str = "{ comments(postId: \"p1\") { id text author { id displayName } } }";

#[tokio::test]
async fn comments_with_author_names_in_one_response_and_one_batch() {
    let s = setup().await;
    let token = s.idp.token().subject("reader").sign();
    let (status, body) = query(&s, Some(&token), COMMENTS).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let comments = body["data"]["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 5);
    assert_eq!(
        comments[0]["author"],
        json!({"id": "u1", "displayName": "Alice"})
    );
    assert_eq!(
        comments[1]["author"],
        json!({"id": "u2", "displayName": "Bob"})
    );
    assert_eq!(comments[2]["author"]["displayName"], "Alice");
    assert_eq!(
        comments[3]["author"],
        json!({"id": "u9", "displayName": null})
    );
    assert_eq!(comments[4]["author"], Value::Null);

    let seen = s.seen.lock().unwrap();
    assert_eq!(
        seen.user_requests.len(),
        1,
        "one user-service request per query"
    );
    let mut ids: Vec<&str> = seen.user_requests[0].1.split(',').collect();
    ids.sort_unstable();
    assert_eq!(ids, ["u1", "u2", "u9"], "each author requested once");
    let relayed = Some(format!("Bearer {token}"));
    assert_eq!(
        seen.user_requests[0].0, relayed,
        "caller's token relayed to the user service"
    );
    assert_eq!(
        seen.comment_auth,
        vec![relayed],
        "and to the comment service"
    );
}

#[tokio::test]
async fn no_author_field_means_no_user_service_call() {
    let s = setup().await;
    let token = s.idp.token().sign();
    let (_, body) = query(&s, Some(&token), "{ comments(postId: \"p1\") { id text } }").await;
    assert_eq!(body["data"]["comments"].as_array().unwrap().len(), 5);
    assert!(s.seen.lock().unwrap().user_requests.is_empty());
}

#[tokio::test]
async fn unauthenticated_requests_are_refused_before_any_downstream_call() {
    let s = setup().await;
    let (status, _) = query(&s, None, COMMENTS).await;
    assert_eq!(status, 401);
    let expired = s.idp.token().expires_in_secs(-600).sign();
    let (status, _) = query(&s, Some(&expired), COMMENTS).await;
    assert_eq!(status, 401);
    let seen = s.seen.lock().unwrap();
    assert!(seen.user_requests.is_empty() && seen.comment_auth.is_empty());
}

#[tokio::test]
async fn downstream_failures_are_graphql_errors_without_the_token() {
    let s = setup().await;
    let token = s.idp.token().sign();
    let (status, body) = query(&s, Some(&token), "{ comments(postId: \"broken\") { id } }").await;
    assert_eq!(status, 200);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("comment service answered 500"),
        "{message}"
    );
    assert!(!body.to_string().contains(&token));
}

#[tokio::test]
async fn abusive_and_invalid_queries_are_rejected() {
    let s = setup().await;
    let token = s.idp.token().sign();
    let (_, body) = query(&s, Some(&token), "{ nope }").await;
    assert!(body["errors"].is_array());
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } }";
    let (_, body) = query(&s, Some(&token), deep).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    let res = reqwest::Client::new()
        .post(format!("{}/graphql", s.gateway))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
}
