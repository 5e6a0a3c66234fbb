//! The soak's short CI variant: a few seconds at a modest rate against one
//! broker (`AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`) and
//! PostgreSQL (`DATABASE_URL`, default the local test database).

use std::time::Duration;

use soak::{Drain, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn a_short_soak_on_one_node_handles_every_committed_event_once() {
    let mut config = SoakConfig::from_env(|k| std::env::var(k).ok());
    if std::env::var("AMQP_URL").is_err() {
        "amqp://guest:guest@127.0.0.1:5672/%2f".clone_into(&mut config.urls);
    }
    config.rate = 200;
    config.duration = Duration::from_secs(5);
    config.relays = 2;
    // 200 events/s needs few open transactions; the suite shares PostgreSQL.
    config.publishers = 8;
    config.drain_timeout = Duration::from_secs(15);

    let summary = soak::run(&config).await.expect("the soak runs");

    assert!(summary.committed >= 900, "{summary}");
    assert_eq!(summary.lost, 0, "{summary}");
    assert_eq!(summary.handled, summary.committed, "{summary}");
    assert_eq!(summary.double_effects, 0, "{summary}");
    assert!(matches!(summary.drain, Drain::Done(_)), "{summary}");
    assert!(
        summary.duplicates_suppressed.is_some(),
        "the inbox counter is read: {summary}"
    );
    assert!(summary.passed(), "{summary}");
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_naming_it() {
    let mut config = SoakConfig::from_env(|_| None);
    "postgres://postgres:secret@127.0.0.1:1/test".clone_into(&mut config.database);
    let err = soak::run(&config).await.unwrap_err().to_string();
    assert!(
        err.contains("cannot connect to PostgreSQL at postgres://postgres:***@127.0.0.1:1/test"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}
