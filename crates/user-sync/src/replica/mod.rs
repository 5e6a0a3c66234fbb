//! [`UserReplica`]: a consumer's local, eventually consistent copy of the users it needs.
//!
//! The replica turns user events into [`Change`](crate::store::Change)s, keeps only the declared
//! [`Fields`](crate::store::Fields) (data minimisation: the email never reaches the store unless
//! asked for), and hands them to its [`ReplicaStore`](crate::store::ReplicaStore), which applies them
//! through the version gate (stale and duplicate events are no-ops) and
//! keeps tombstones (a late update never resurrects a deleted user). Hooks
//! (`on_updated`, `on_deleted`) run in the store's transaction where it has
//! one. Wire it into a [`Router`](tessera_event_bus::Router) with [`UserReplica::route`].
//!
//! Metrics (through the `metrics` facade):
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `tessera_user_replica_events_total` | counter | `replica`, `outcome` (`inserted`, `updated`, `deleted`, `ignored`, `invalid`, `failed`) |
//! | `tessera_user_replica_lag_seconds` | gauge | `replica`: now minus the newest applied event's `occurred_at`, set on each apply and by [`UserReplica::report_lag`] |
//! | `tessera_user_replica_newest_event_seconds` | gauge | `replica`: the newest applied `occurred_at`, unix seconds (alert on `time() - x`, which stays right when idle) |
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use tessera_event_bus::{EventPublisher, Router, memory::MemoryBus};
//! use tessera_user_sync::{UserReplica, events::{UserDeleted, UserProfileUpdated, UserRegistered}};
//!
//! let bus = MemoryBus::new();
//! let replica = UserReplica::in_memory("comment-service");
//! let router = replica
//!     .route(Router::new(Arc::new(bus.subscriber()), "comment-service"))
//!     .start()
//!     .await
//!     .unwrap();
//!
//! let users = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! users.publish(UserRegistered::new("u1", 1, "Ada").email("ada@example.com")).await.unwrap();
//! users.publish(UserProfileUpdated::new("u1", 2, "Ada Lovelace")).await.unwrap();
//! // A duplicate of version 1 arrives late: ignored.
//! users.publish(UserRegistered::new("u1", 1, "Ada")).await.unwrap();
//!
//! # for _ in 0..100 { if replica.get("u1").await.unwrap().is_some_and(|u| u.version == 2) { break } tokio::time::sleep(std::time::Duration::from_millis(10)).await; }
//! # tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! let ada = replica.get("u1").await.unwrap().unwrap();
//! assert_eq!(ada.display_name.as_deref(), Some("Ada Lovelace"));
//! assert_eq!(ada.email, None, "not kept: the default keeps only the display name");
//!
//! users.publish(UserDeleted::new("u1", 3)).await.unwrap();
//! # for _ in 0..100 { if replica.get("u1").await.unwrap().is_none() { break } tokio::time::sleep(std::time::Duration::from_millis(10)).await; }
//! assert!(replica.get("u1").await.unwrap().is_none());
//! router.shutdown().await.unwrap();
//! # });
//! ```

mod batch;
mod builder;
mod service;
mod user_replica;

pub use self::{
    builder::UserReplicaBuilder,
    service::ReplicaService,
    user_replica::{EVENTS, LAG, NEWEST, UserReplica},
};
