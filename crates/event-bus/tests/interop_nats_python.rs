//! Interop with a foreign NATS client: nats-py publishing and consuming
//! CloudEvents in the NATS binding's binary mode, both directions, through
//! tests/interop/nats_interop.py. Needs NATS and `pip install nats-py`.
#![cfg(all(feature = "nats", feature = "testkit"))]

use std::{process::Command, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_event_bus::{
    Envelope, Event, EventPublisher, JsonCodec, SubscribeOptions, Subscriber,
    testkit::{NatsTestBackend, nats_url},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserRenamed {
    user_id: String,
    display_name: String,
}
tessera_event_bus::event!(UserRenamed => "com.example.user.renamed.v1", subject = user_id);

fn python(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/nats_interop.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed (is nats-py installed? `pip install nats-py`): {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints json")
}

#[tokio::test]
#[ignore = "needs NATS and python nats-py"]
async fn nats_py_reads_what_tessera_publishes() {
    let backend = NatsTestBackend::new().await;
    let events = EventPublisher::new(Arc::new(backend.bus().publisher()), "/user-service");
    let mut envelope = events.envelope(UserRenamed {
        user_id: "u-7".into(),
        display_name: "Grace".into(),
    });
    // A value the binding percent-encodes (space, non-ASCII).
    envelope
        .attributes_mut()
        .set_correlation_id("corr 7 \u{2713}");
    events.publish_envelope(&envelope).await.unwrap();

    let stream = backend.bus().config().stream_name().to_owned();
    let subject = backend.bus().subject_for(UserRenamed::TYPE).unwrap();
    let sent_to = subject.clone();
    let got =
        tokio::task::spawn_blocking(move || python(&["consume", &nats_url(), &stream, &subject]))
            .await
            .unwrap();

    assert_eq!(got["subject"], sent_to.as_str());
    let h = &got["headers"];
    assert_eq!(h["ce-specversion"], "1.0");
    assert_eq!(h["ce-id"], envelope.id());
    assert_eq!(h["ce-type"], UserRenamed::TYPE);
    assert_eq!(h["ce-correlationid"], "corr%207%20%E2%9C%93");
    assert_eq!(h["ce-datacontenttype"], "application/json");
    assert_eq!(h["Content-Type"], "application/json");
    assert_eq!(h["Nats-Msg-Id"], envelope.id());
    let a = &got["attributes"];
    assert_eq!(a["id"], envelope.id());
    assert_eq!(a["source"], "/user-service");
    assert_eq!(a["type"], UserRenamed::TYPE);
    assert_eq!(a["subject"], "u-7");
    assert_eq!(a["correlationid"], "corr 7 \u{2713}");
    assert!(a["time"].as_str().is_some_and(|t| !t.is_empty()), "{a}");
    assert_eq!(
        got["data"],
        serde_json::json!({"user_id": "u-7", "display_name": "Grace"})
    );
}

#[tokio::test]
#[ignore = "needs NATS and python nats-py"]
async fn tessera_reads_what_nats_py_publishes() {
    let backend = NatsTestBackend::new().await;
    let group = format!("from-python-{}", uuid::Uuid::new_v4().simple());
    let subscriber = backend.bus().subscriber();
    let mut sub = subscriber
        .subscribe(SubscribeOptions::new(&group).event_type(UserRenamed::TYPE))
        .await
        .unwrap();
    let subject = backend.bus().subject_for(UserRenamed::TYPE).unwrap();
    let sent = tokio::task::spawn_blocking(move || {
        python(&["publish", &nats_url(), &subject, UserRenamed::TYPE])
    })
    .await
    .unwrap();
    assert_eq!(sent["stream"], backend.bus().config().stream_name());

    let delivery = tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("delivery in time")
        .expect("subscription works")
        .expect("subscription open");
    let raw = delivery.event().clone();
    assert_eq!(raw.id(), sent["id"].as_str().unwrap());
    assert_eq!(raw.attributes.source, "/python-service");
    assert_eq!(raw.subject(), Some("user 42 \u{e9}"));
    assert_eq!(raw.attributes.correlation_id(), Some("py-corr-1"));
    assert_eq!(
        raw.attributes.datacontenttype.as_deref(),
        Some("application/json")
    );
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
