//! The conformance kit against the in-memory backend.

tessera_event_bus::conformance_tests!(tessera_event_bus::testkit::MemoryTestBackend::new());
