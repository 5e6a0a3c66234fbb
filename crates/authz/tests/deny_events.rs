//! Every denial is a `tracing` event with the reason and the requirements,
//! and never contains the token.

mod common;

use common::{TOKEN, principal};
use http::{Request, Response, StatusCode};
use serde_json::json;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use tessera_authz::{RequireRoles, RequireScopes, ensure, policy};
use tower::{Layer, ServiceExt, service_fn};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Runs `f` with a subscriber that records every event, returns the log.
async fn capture<F: Future<Output = ()>>(f: F) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    f.await;
    captured.text()
}

fn ok_service() -> impl tower::Service<
    Request<String>,
    Response = Response<bytes::Bytes>,
    Error = Infallible,
    Future: Send,
> + Clone {
    service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new(bytes::Bytes::new()))
    })
}

fn assert_no_token(log: &str) {
    for part in TOKEN.split('.') {
        assert!(!log.contains(part), "token part {part:?} logged: {log}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn forbidden_request_logs_reason_scopes_subject_and_path() {
    let log = capture(async {
        let svc = RequireScopes::all(["orders:write"]).layer(ok_service());
        let mut req = Request::builder()
            .uri("/orders/7?x=1")
            .body(String::new())
            .unwrap();
        req.extensions_mut()
            .insert(principal(json!({ "scope": "orders:read" })));
        assert_eq!(
            svc.oneshot(req).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    })
    .await;
    assert!(log.contains("authorization denied"), "{log}");
    assert!(log.contains("the token lacks a required scope"), "{log}");
    assert!(log.contains("required_scopes=orders:write"), "{log}");
    assert!(log.contains("subject=\"alice\""), "{log}");
    assert!(log.contains("path=\"/orders/7\""), "{log}");
    assert!(log.contains("tessera_authz"), "{log}");
    assert_no_token(&log);
}

#[tokio::test(flavor = "current_thread")]
async fn forbidden_role_request_logs_the_required_roles() {
    let log = capture(async {
        let svc = RequireRoles::any(["auditor", "admin"]).layer(ok_service());
        let mut req = Request::new(String::new());
        req.extensions_mut()
            .insert(principal(json!({ "roles": ["viewer"] })));
        assert_eq!(
            svc.oneshot(req).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    })
    .await;
    assert!(log.contains("required_roles=auditor admin"), "{log}");
    assert!(log.contains("none of the accepted roles"), "{log}");
    assert_no_token(&log);
}

#[tokio::test(flavor = "current_thread")]
async fn missing_principal_is_logged() {
    let log = capture(async {
        let svc = RequireScopes::all(["a"]).layer(ok_service());
        let req = Request::builder()
            .uri("/private")
            .body(String::new())
            .unwrap();
        assert_eq!(
            svc.oneshot(req).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
    assert!(log.contains("authorization denied"), "{log}");
    assert!(log.contains("no authenticated principal"), "{log}");
    assert!(log.contains("path=\"/private\""), "{log}");
}

#[tokio::test(flavor = "current_thread")]
async fn allowed_requests_log_nothing() {
    let log = capture(async {
        let svc = RequireScopes::all(["a"]).layer(ok_service());
        let mut req = Request::new(String::new());
        req.extensions_mut()
            .insert(principal(json!({ "scope": "a" })));
        assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
        assert!(ensure(&principal(json!({})), policy::subject_is("alice")).is_ok());
    })
    .await;
    assert!(!log.contains("authorization denied"), "{log}");
}

#[tokio::test(flavor = "current_thread")]
async fn ensure_denial_is_logged_with_its_reason() {
    let log = capture(async {
        let p = principal(json!({}));
        let denied = ensure(
            &p,
            policy::with_reason("only the author may edit", policy::subject_is("bob")),
        );
        assert!(denied.is_err());
    })
    .await;
    assert!(log.contains("authorization denied"), "{log}");
    assert!(log.contains("only the author may edit"), "{log}");
    assert!(log.contains("subject=\"alice\""), "{log}");
    assert_no_token(&log);
}
