//! Outbox relay benchmarks (placeholder while the relay is written).
fn main() {}
