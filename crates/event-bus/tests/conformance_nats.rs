//! The conformance kit against NATS JetStream (`NATS_URL`, default the
//! local server): every case, the forced disconnect included (the bus
//! connects through a relay that cuts its connection).
#![cfg(all(feature = "nats", feature = "testkit"))]

tessera_event_bus::conformance_tests!(
    tessera_event_bus::testkit::NatsTestBackend::new().await,
    #[ignore = "needs NATS"]
);
