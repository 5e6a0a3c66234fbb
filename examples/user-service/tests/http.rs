//! user-service over real HTTP with a real (test) issuer and the in-memory
//! bus, checking every route and the events it emits.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_event_bus::memory::MemoryBus;
use tessera_event_bus::{EventPublisher, SubscribeOptions, Subscriber, Subscription};
use tessera_user_sync::producer::MemoryUserDirectory;
use user_service::{Users, app};

struct Setup {
    idp: TestIssuer,
    base: String,
    events: Box<dyn Subscription>,
    client: reqwest::Client,
}

async fn setup() -> Setup {
    let idp = TestIssuer::start().await.unwrap();
    let bus = MemoryBus::new();
    let events = bus
        .subscriber()
        .subscribe(SubscribeOptions::new("observer").event_types([
            "tessera.user.registered.v1",
            "tessera.user.profile_updated.v1",
            "tessera.user.deleted.v1",
        ]))
        .await
        .unwrap();
    let users = MemoryUserDirectory::new(EventPublisher::new(
        Arc::new(bus.publisher()),
        "/user-service",
    ));
    let validator = idp.validator();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app(validator, Users::new(users));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Setup {
        idp,
        base,
        events,
        client: reqwest::Client::new(),
    }
}

impl Setup {
    fn user(&self, sub: &str, name: &str) -> String {
        self.idp.token().subject(sub).claim("name", name).sign()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> (u16, Value, String) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
        )
    }

    async fn next_event(&mut self) -> (String, Value) {
        let delivery = tokio::time::timeout(Duration::from_secs(5), self.events.next())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        let ty = delivery.event().attributes.ty.clone();
        let data: Value = serde_json::from_slice(&delivery.event().data).unwrap();
        delivery.ack().await.unwrap();
        (ty, data)
    }

    async fn no_more_events(&mut self) {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), self.events.next())
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn profile_lifecycle_emits_the_user_events() {
    let mut s = setup().await;
    let ada = s.user("u-ada", "Ada Lovelace");

    let (status, me, _) = s.call(reqwest::Method::GET, "/users/me", &ada, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "u-ada");
    assert_eq!(me["display_name"], "Ada Lovelace");
    assert_eq!(me["version"], 1);
    let (ty, data) = s.next_event().await;
    assert_eq!(ty, "tessera.user.registered.v1");
    assert_eq!(data["user_id"], "u-ada");
    assert_eq!(data["version"], 1);
    assert_eq!(data["display_name"], "Ada Lovelace");

    // A second request does not register again.
    let (status, _, _) = s.call(reqwest::Method::GET, "/users/me", &ada, None).await;
    assert_eq!(status, 200);
    s.no_more_events().await;

    let (status, me, _) = s
        .call(
            reqwest::Method::PATCH,
            "/users/me",
            &ada,
            Some(r#"{"display_name":"Countess Ada"}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["display_name"], "Countess Ada");
    assert_eq!(me["version"], 2);
    let (ty, data) = s.next_event().await;
    assert_eq!(ty, "tessera.user.profile_updated.v1");
    assert_eq!(data["version"], 2);
    assert_eq!(data["display_name"], "Countess Ada");

    let (status, public, _) = s
        .call(reqwest::Method::GET, "/users/u-ada", &ada, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        public,
        json!({"id": "u-ada", "display_name": "Countess Ada"})
    );

    let (status, _, _) = s
        .call(reqwest::Method::DELETE, "/users/me", &ada, None)
        .await;
    assert_eq!(status, 204);
    let (ty, data) = s.next_event().await;
    assert_eq!(ty, "tessera.user.deleted.v1");
    assert_eq!(data["user_id"], "u-ada");
    assert_eq!(data["version"], 3);
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/users/u-ada", &ada, None)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = s.call(reqwest::Method::GET, "/users/me", &ada, None).await;
    assert_eq!(status, 404, "a deleted account is not recreated");
    s.no_more_events().await;
}

#[tokio::test]
async fn display_name_is_validated() {
    let s = setup().await;
    let bob = s.user("u-bob", "Bob");
    for body in [
        r#"{"display_name":""}"#,
        r#"{"display_name":"   "}"#,
        r#"{"display_name":"bad\u0007name"}"#,
        &format!(r#"{{"display_name":"{}"}}"#, "x".repeat(65)),
        r#"{"display_name":5}"#,
        r#"{"name":"missing field"}"#,
    ] {
        let (status, problem, content_type) = s
            .call(reqwest::Method::PATCH, "/users/me", &bob, Some(body))
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["status"], 422);
    }
    let (status, _, _) = s
        .call(reqwest::Method::PATCH, "/users/me", &bob, Some("not json"))
        .await;
    assert_eq!(status, 400);
    let res = s
        .client
        .patch(format!("{}/users/me", s.base))
        .bearer_auth(&bob)
        .header("content-type", "text/plain")
        .body(r#"{"display_name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let (_, me, _) = s.call(reqwest::Method::GET, "/users/me", &bob, None).await;
    assert_eq!(me["display_name"], "Bob", "nothing changed");
    assert_eq!(me["version"], 1);
}

#[tokio::test]
async fn batch_lookup_returns_known_users_only() {
    let s = setup().await;
    for (sub, name) in [("u1", "One"), ("u2", "Two"), ("u3", "Three")] {
        let (status, _, _) = s
            .call(reqwest::Method::GET, "/users/me", &s.user(sub, name), None)
            .await;
        assert_eq!(status, 200);
    }
    let reader = s.user("u1", "One");
    let (status, users, _) = s
        .call(
            reqwest::Method::GET,
            "/users?ids=u3,u1,nobody,u1",
            &reader,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        users,
        json!([{"id": "u1", "display_name": "One"}, {"id": "u3", "display_name": "Three"}])
    );
    let too_many = (0..101)
        .map(|i| format!("x{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (status, _, _) = s
        .call(
            reqwest::Method::GET,
            &format!("/users?ids={too_many}"),
            &reader,
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn snapshot_needs_the_snapshot_scope_and_pages() {
    let s = setup().await;
    for i in 0..5 {
        let (status, _, _) = s
            .call(
                reqwest::Method::GET,
                "/users/me",
                &s.user(&format!("u{i}"), "N"),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    let user = s.user("u0", "N");
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/users?limit=2", &user, None)
        .await;
    assert_eq!(status, 403);
    let service = s
        .idp
        .token()
        .subject("comment-service")
        .claim("scope", "users:snapshot")
        .sign();
    let (status, page, _) = s
        .call(reqwest::Method::GET, "/users?limit=2", &service, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert_eq!(page["users"][0]["version"], 1);
    let mut seen = 2;
    let mut next = page["next"].as_str().map(str::to_owned);
    while let Some(cursor) = next {
        let (_, page, _) = s
            .call(
                reqwest::Method::GET,
                &format!("/users?after={cursor}&limit=2"),
                &service,
                None,
            )
            .await;
        seen += page["users"].as_array().unwrap().len();
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 5);
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/users?limit=0", &service, None)
        .await;
    assert_eq!(status, 400);
    // The snapshot caller is a service: it was not provisioned as a user.
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/users/comment-service", &user, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn invalid_tokens_are_refused() {
    let s = setup().await;
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/users/me", "garbage", None)
        .await;
    assert_eq!(status, 401);
    let expired = s.idp.token().subject("u1").expires_in_secs(-600).sign();
    let (status, _, _) = s
        .call(reqwest::Method::GET, "/users/me", &expired, None)
        .await;
    assert_eq!(status, 401);
    let res = reqwest::get(format!("{}/healthz", s.base)).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn concurrent_first_requests_register_once() {
    let mut s = setup().await;
    let token = s.user("u-race", "Racer");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, token) = (
            s.client.clone(),
            format!("{}/users/me", s.base),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (ty, _) = s.next_event().await;
    assert_eq!(ty, "tessera.user.registered.v1");
    s.no_more_events().await;
}
