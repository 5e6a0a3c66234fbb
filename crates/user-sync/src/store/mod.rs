//! Replica stores: where a [`UserReplica`](crate::UserReplica) keeps its users.
//!
//! A [`ReplicaStore`] applies [`Change`]s through the version gate and runs
//! the replica's [`Hooks`] for the changes that took effect. Every store
//! follows the same rules, so the order events arrive in does not matter:
//!
//! - An upsert takes effect when the user is unknown, or known and live
//!   with a lower version. An equal or lower version is a no-op (stale or
//!   duplicate).
//! - A deletion takes effect whenever the user is not already deleted,
//!   whatever its version, and leaves a **tombstone** (version = the higher
//!   of the deletion's and the stored one). Deletion is final: nothing
//!   applies to a tombstone, so a late update never resurrects a user.
//! - `on_updated` hooks run for each upsert that took effect, `on_deleted`
//!   hooks for each new tombstone (also for users the replica never saw,
//!   who may still own data), in the store's transaction where it has one.
//!   A failing hook means the change is not written.
//!
//! Two stores ship: [`MemoryStore`] and, with feature `postgres`,
//! [`PgReplicaStore`](crate::store::postgres::PgReplicaStore).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_user_sync::store::{Change, Hooks, MemoryStore, ReplicaStore, ReplicatedUser, DeletedUser};
//! use time::OffsetDateTime;
//!
//! let store = MemoryStore::new();
//! let now = OffsetDateTime::now_utc();
//! let hooks = Hooks::default();
//! let ada = ReplicatedUser::new("u1", 2, now).with_display_name("Ada");
//! store.apply(vec![Change::Upsert(ada)], &hooks).await.unwrap();
//! // A late version 1 is stale:
//! let old = ReplicatedUser::new("u1", 1, now).with_display_name("Old");
//! let report = store.apply(vec![Change::Upsert(old)], &hooks).await.unwrap();
//! assert_eq!(report.ignored, 1);
//! assert_eq!(store.get("u1").await.unwrap().unwrap().display_name.as_deref(), Some("Ada"));
//!
//! store.apply(vec![Change::Delete(DeletedUser::new("u1", 3, now))], &hooks).await.unwrap();
//! assert!(store.get("u1").await.unwrap().is_none());
//! # });
//! ```

mod change;
mod fields;
mod hooks;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod replica_store;
mod user;

pub use self::{
    change::{ApplyReport, Change, Outcome},
    fields::Fields,
    hooks::{HookFuture, Hooks},
    memory::{MemoryStore, NoTransaction},
    replica_store::ReplicaStore,
    user::{DeletedUser, ReplicatedUser, UserState},
};
