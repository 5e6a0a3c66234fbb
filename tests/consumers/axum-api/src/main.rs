//! The README's "protect an axum API" snippet (src/snippet.rs), built with
//! exactly that case's features, and checked without network: a request
//! without a token is refused before any key is fetched.

mod snippet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = snippet::app("https://idp.example", "orders-api").expect("valid configuration");
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();

    let health = app.clone().oneshot(get("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let me = app.clone().oneshot(get("/me")).await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert!(me.headers().contains_key("www-authenticate"));
    let forged = Request::get("/admin")
        .header("authorization", "Bearer not-a-jwt")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(forged).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // serve() is the snippet's way to run it; bind a free port and stop at once.
    let server = tokio::spawn(snippet::serve(app, "127.0.0.1:0"));
    server.abort();
    println!("axum-api: ok");
}
