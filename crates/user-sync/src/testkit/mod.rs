//! The conformance kit for [`ReplicaStore`]s (feature `testkit`): one suite
//! that [`MemoryStore`], `PgReplicaStore` and your
//! own store all run.
//!
//! Modelled on Watermill's universal pub/sub tests, like
//! `tessera_event_bus::testkit`. A store under test implements
//! [`TestStore`] (how to make a fresh, empty store, and which
//! [`Capabilities`] it declares), then expands
//! [`replica_store_tests!`](crate::replica_store_tests) in an integration
//! test file: one `#[tokio::test]` per case, so `cargo test` can filter a case
//! by name. Cases check the contract of the [`store`](crate::store) module:
//! the version gate (stale and duplicate changes are no-ops), tombstones (a
//! late update never resurrects a user), the hooks (once per change that took
//! effect; a failing hook leaves its change unwritten), reads (`get`,
//! `get_many`, `state`), concurrent writers, reconciliation and
//! `prune_tombstones`. They go through a [`UserReplica`](crate::UserReplica)
//! where the contract is about events, and through
//! [`ReplicaStore::apply`] where it is about changes. Where stores may
//! differ, a case adapts to the declared capabilities.
//!
//! The calling crate needs `tokio` with the `macros` feature among its
//! dev-dependencies.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_user_sync::testkit::{MemoryTestStore, cases};
//!
//! cases::stale_and_duplicate_versions_are_no_ops(&MemoryTestStore::new()).await;
//! // In tests/replica_store.rs:
//! // tessera_user_sync::replica_store_tests!(tessera_user_sync::testkit::MemoryTestStore::new());
//! # });
//! ```

pub mod cases;

use async_trait::async_trait;

use crate::store::{MemoryStore, ReplicaStore};

/// What a store promises beyond the common contract; cases adapt to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// A batch is written all or nothing: when a hook fails, no change of
    /// the batch is written.
    pub transactional: bool,
    /// The changes of one user within a batch take effect as one (the
    /// newest, or the first deletion); the report counts the others as
    /// ignored.
    pub coalesces_batches: bool,
}

impl Capabilities {
    /// Nothing beyond the common contract.
    pub fn none() -> Self {
        Self::default()
    }

    /// Declares all-or-nothing batches.
    #[must_use]
    pub fn with_transactions(mut self) -> Self {
        self.transactional = true;
        self
    }

    /// Declares that a batch's changes to one user are coalesced.
    #[must_use]
    pub fn with_coalesced_batches(mut self) -> Self {
        self.coalesces_batches = true;
        self
    }
}

/// A store under test.
#[async_trait]
pub trait TestStore: Send + Sync + 'static {
    /// The store.
    type Store: ReplicaStore;

    /// What the store promises.
    fn capabilities(&self) -> Capabilities;

    /// A new, empty store. `name` is unique within the suite (lowercase
    /// letters, digits and underscores, at most 40 characters), so it can
    /// name a schema or a table; a case may ask for several stores.
    async fn store(&self, name: &str) -> Self::Store;

    /// Removes what [`store`](Self::store) made for `name`; called for each
    /// store once its case passed. Nothing by default.
    async fn clean_up(&self, name: &str) {
        let _ = name;
    }
}

/// The in-memory store under the kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryTestStore;

impl MemoryTestStore {
    /// The in-memory store under test.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl TestStore for MemoryTestStore {
    type Store = MemoryStore;

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    async fn store(&self, _name: &str) -> MemoryStore {
        MemoryStore::new()
    }
}

/// Expands to one `#[tokio::test]` per conformance case for a store.
///
/// The argument is an expression evaluated in each test (inside an async fn,
/// so it may `.await`) whose value implements [`TestStore`].
///
/// Attributes after the expression go on every test, for example
/// `#[ignore = "needs PostgreSQL"]` for a store that needs a database.
///
/// ```ignore
/// tessera_user_sync::replica_store_tests!(tessera_user_sync::testkit::MemoryTestStore::new());
/// tessera_user_sync::replica_store_tests!(PgTestStore::connect().await, #[ignore = "needs PostgreSQL"]);
/// ```
#[macro_export]
macro_rules! replica_store_tests {
    // One case at a time, so the attributes repeat once per test.
    (@cases [$($attr:tt)*] ($store:expr); $case:ident $(, $rest:ident)* $(,)?) => {
        #[::tokio::test]
        $($attr)*
        async fn $case() {
            $crate::testkit::cases::$case(&$store).await;
        }
        $crate::replica_store_tests!(@cases [$($attr)*] ($store); $($rest),*);
    };
    (@cases [$($attr:tt)*] ($store:expr); $(,)?) => {};
    ($store:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::replica_store_tests!(@cases [$(#[$meta])*] ($store);
            stale_and_duplicate_versions_are_no_ops,
            a_late_update_never_resurrects_a_deleted_user,
            a_deletion_wins_over_any_version_and_is_final,
            a_deletion_of_an_unknown_user_leaves_a_tombstone_and_runs_the_hook,
            only_declared_fields_are_kept,
            get_many_returns_live_users_only,
            invalid_events_are_errors_and_change_nothing,
            apply_all_reports_what_happened,
            a_failing_hook_leaves_the_change_unwritten,
            a_failing_hook_fails_the_whole_batch_when_transactional,
            concurrent_writers_racing_on_one_user_delete_it_once,
            backfill_and_reconciliation_converge,
            old_tombstones_are_pruned_and_newer_ones_kept
        );
    };
}
