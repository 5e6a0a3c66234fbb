//! Replica benchmarks.
fn main() {}
