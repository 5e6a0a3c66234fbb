//! Helpers shared by the integration tests, one module per backend they need.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "postgres")]
pub mod outbox;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
