//! The conformance kit against RabbitMQ (`AMQP_URL`, default the local broker).
#![cfg(all(feature = "rabbitmq", feature = "testkit"))]

tessera_event_bus::conformance_tests!(
    tessera_event_bus::testkit::RabbitTestBackend::new().await,
    #[ignore = "needs RabbitMQ"]
);
