//! Shared test harness: the service over real HTTP, a test issuer, an in-memory bus.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use comment_service::{Storage, app};
use serde_json::Value;
use tessera_authn::test_util::TestIssuer;
use tessera_event_bus::EventPublisher;
use tessera_event_bus::memory::MemoryBus;
use tessera_event_bus::router::RouterHandle;

pub struct Service {
    pub base: String,
    pub consumer: RouterHandle,
    pub server: tokio::task::JoinHandle<()>,
    pub client: reqwest::Client,
}

impl Service {
    /// Starts the service on `storage`, consuming user events from `bus`.
    pub async fn start(idp: &TestIssuer, bus: &MemoryBus, storage: Storage) -> Self {
        let validator = idp.validator();
        let consumer = storage
            .consumer(Arc::new(bus.subscriber()))
            .start()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app(validator, storage))
                .await
                .unwrap();
        });
        Self {
            base,
            consumer,
            server,
            client: reqwest::Client::new(),
        }
    }

    /// Stops serving and consuming.
    pub async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        self.consumer.shutdown().await.unwrap();
    }

    pub async fn post(&self, post_id: &str, token: &str, text: &str) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}/posts/{post_id}/comments", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "text": text }).to_string())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn list(&self, post_id: &str, token: &str) -> Value {
        let res = self
            .client
            .get(format!("{}/posts/{post_id}/comments", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        serde_json::from_str(&res.text().await.unwrap()).unwrap()
    }

    pub async fn delete(&self, id: &str, token: &str) -> u16 {
        self.client
            .delete(format!("{}/comments/{id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Polls the post's comments until `check` holds (events apply asynchronously).
    pub async fn eventually(
        &self,
        post_id: &str,
        token: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = self.list(post_id, token).await;
            if check(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("condition never held; last list: {last:#}");
    }
}

/// A token for `sub`, with `scope` (space-delimited) if not empty.
pub fn token(idp: &TestIssuer, sub: &str, scope: &str) -> String {
    let t = idp.token().subject(sub);
    if scope.is_empty() {
        t.sign()
    } else {
        t.claim("scope", scope).sign()
    }
}

/// The user service's side of the bus.
pub fn users(bus: &MemoryBus) -> EventPublisher {
    EventPublisher::new(Arc::new(bus.publisher()), "/user-service")
}

/// The author's display name of the comment `id` in a list.
pub fn author_of<'a>(list: &'a Value, id: &Value) -> &'a Value {
    &list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| &c["id"] == id)
        .unwrap_or_else(|| panic!("comment {id} not in {list:#}"))["author"]
}

/// Waits until the service's consumer group has nothing queued or in flight.
pub async fn idle(bus: &MemoryBus) {
    for _ in 0..200 {
        if bus.queued(comment_service::GROUP) == 0 && bus.in_flight(comment_service::GROUP) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the consumer never became idle");
}
