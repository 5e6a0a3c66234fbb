//! The conformance kit against RabbitMQ (`AMQP_URL`, default the local
//! broker): once with classic queues, once with quorum queues.
#![cfg(all(feature = "rabbitmq", feature = "testkit"))]

tessera_event_bus::conformance_tests!(
    tessera_event_bus::testkit::RabbitTestBackend::new().await,
    #[ignore = "needs RabbitMQ"]
);

/// The same cases with quorum queues (group queue, retry queues, parking lot).
mod quorum {
    tessera_event_bus::conformance_tests!(
        tessera_event_bus::testkit::RabbitTestBackend::quorum().await,
        #[ignore = "needs RabbitMQ"]
    );
}
