//! Backfill and reconciliation from a snapshot of the user service.
//!
//! A new replica starts empty. The procedure that fills it without losing
//! an event:
//!
//! 1. **Bind first**: start the replica's [`Router`](tessera_event_bus::Router)
//!    (which declares and binds the group's queue), so every event published
//!    from now on is kept for the replica. Live events are applied while the
//!    backfill runs: the version gate makes the overlap harmless.
//! 2. **Page** through a [`SnapshotSource`] ([`Backfill::run`]) applying each
//!    user as a versioned upsert: a snapshot row older than what a live event
//!    already brought is ignored, a user deleted meanwhile stays deleted.
//! 3. **Drain**: the router keeps consuming what queued up meanwhile.
//!
//! **Reconciliation** ([`Backfill::reconcile`]) runs the same paging, then
//! deletes (tombstones, with `on_deleted` hooks) the replica's live users the
//! snapshot no longer has, repairing missed deletions. Only users whose last
//! local change is older than the run's start minus a grace period are
//! considered, so a user registered while the snapshot was paged is never
//! removed. A failed page stops the run before anything is deleted. Run it
//! on demand, or on a schedule with [`Backfill::spawn_reconciliation`].
//!
//! The HTTP endpoint's shape (`GET /users?after=<cursor>&limit=<n>`) is
//! [`SnapshotPage`]; [`HttpSnapshotSource`](crate::snapshot::http::HttpSnapshotSource)
//! (feature `http`) reads it.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_user_sync::{UserReplica, snapshot::{Backfill, SnapshotUser, StaticSnapshot}};
//!
//! let source = StaticSnapshot::new(vec![
//!     SnapshotUser::new("u1", 4, "Ada"),
//!     SnapshotUser::new("u2", 1, "Grace"),
//! ]);
//! let replica = UserReplica::in_memory("comments");
//! let report = Backfill::new(source.clone()).page_size(1).run(&replica).await.unwrap();
//! assert_eq!((report.pages, report.users), (2, 2));
//! assert_eq!(replica.get("u1").await.unwrap().unwrap().version, 4);
//!
//! // u2 is gone from the user service: reconciliation tombstones it.
//! source.set(vec![SnapshotUser::new("u1", 4, "Ada")]);
//! let report = Backfill::new(source).grace(std::time::Duration::ZERO).reconcile(&replica).await.unwrap();
//! assert_eq!(report.removed, 1);
//! assert!(replica.get("u2").await.unwrap().is_none());
//! # });
//! ```

mod backfill;
#[cfg(feature = "http")]
pub mod http;
mod source;
mod static_snapshot;

pub use self::{
    backfill::{Backfill, BackfillReport, ReconciliationHandle},
    source::{SnapshotPage, SnapshotSource, SnapshotUser},
    static_snapshot::StaticSnapshot,
};
