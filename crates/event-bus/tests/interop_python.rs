//! Interop with the official CloudEvents Python SDK (`cloudevents.core.bindings.rabbitmq`
//! with pika), both directions, through tests/interop/cloudevents_interop.py.
#![cfg(all(feature = "rabbitmq", feature = "testkit"))]

use std::{process::Command, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_event_bus::{
    Envelope, Event, EventPublisher, JsonCodec, SubscribeOptions, Subscriber, Subscription,
    testkit::{RabbitTestBackend, amqp_url},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserRenamed {
    user_id: String,
    display_name: String,
}
tessera_event_bus::event!(UserRenamed => "com.example.user.renamed.v1", subject = user_id);

fn python(args: &[&str]) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/cloudevents_interop.py"
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints json")
}

async fn next(sub: &mut Box<dyn Subscription>) -> tessera_event_bus::Delivery {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("delivery in time")
        .expect("subscription works")
        .expect("subscription open")
}

#[tokio::test]
#[ignore = "needs RabbitMQ and python cloudevents"]
async fn python_sdk_reads_what_tessera_publishes() {
    let backend = RabbitTestBackend::new().await;
    let group = format!("py-consumer-{}", uuid::Uuid::new_v4().simple());
    let subscriber = backend.bus().subscriber();
    let mut binding = subscriber
        .subscribe(SubscribeOptions::new(&group).event_type(UserRenamed::TYPE))
        .await
        .unwrap();
    binding.close().await.unwrap();

    let events = EventPublisher::new(Arc::new(backend.bus().publisher()), "/user-service");
    let mut envelope = events.envelope(UserRenamed {
        user_id: "u-7".into(),
        display_name: "Grace".into(),
    });
    envelope.attributes_mut().set_correlation_id("corr-7");
    events.publish_envelope(&envelope).await.unwrap();

    let got = tokio::task::spawn_blocking(move || python(&["consume", &amqp_url(), &group]))
        .await
        .unwrap();
    let a = &got["attributes"];
    assert_eq!(a["id"], envelope.id());
    assert_eq!(a["source"], "/user-service");
    assert_eq!(a["type"], UserRenamed::TYPE);
    assert_eq!(a["specversion"], "1.0");
    assert_eq!(a["subject"], "u-7");
    assert_eq!(a["datacontenttype"], "application/json");
    assert_eq!(a["correlationid"], "corr-7");
    assert!(a["time"].as_str().is_some_and(|t| !t.is_empty()), "{a}");
    assert_eq!(
        got["data"],
        serde_json::json!({"user_id": "u-7", "display_name": "Grace"})
    );
    assert_eq!(got["message_id"], envelope.id());
    assert_eq!(got["type_property"], UserRenamed::TYPE);
    assert_eq!(got["delivery_mode"], 2);
    assert!(got["timestamp"].as_u64().is_some());
}

#[tokio::test]
#[ignore = "needs RabbitMQ and python cloudevents"]
async fn tessera_reads_what_the_python_sdk_publishes() {
    let backend = RabbitTestBackend::new().await;
    let group = format!("from-python-{}", uuid::Uuid::new_v4().simple());
    let subscriber = backend.bus().subscriber();
    let mut sub = subscriber
        .subscribe(SubscribeOptions::new(&group).event_type(UserRenamed::TYPE))
        .await
        .unwrap();
    let exchange = backend.bus().exchange().to_owned();
    let sent = tokio::task::spawn_blocking(move || {
        python(&["publish", &amqp_url(), &exchange, UserRenamed::TYPE])
    })
    .await
    .unwrap();

    let delivery = next(&mut sub).await;
    let raw = delivery.event().clone();
    assert_eq!(raw.id(), sent["id"].as_str().unwrap());
    assert_eq!(raw.attributes.source, "/python-service");
    assert_eq!(raw.subject(), Some("user-42"));
    assert_eq!(raw.attributes.correlation_id(), Some("py-corr-1"));
    assert_eq!(
        raw.attributes
            .time
            .map(tessera_event_bus::wire::format_time)
            .as_deref(),
        Some("2025-01-02T03:04:05Z")
    );
    let envelope: Envelope<UserRenamed> = Envelope::decode(&raw, &JsonCodec).expect("typed");
    assert_eq!(envelope.data().display_name, "Ada");
    delivery.ack().await.unwrap();
}
