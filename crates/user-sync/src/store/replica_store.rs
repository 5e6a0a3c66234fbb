//! [`ReplicaStore`]: the trait every store implements, and its contract.

use std::{collections::HashMap, fmt};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    change::{ApplyReport, Change},
    hooks::Hooks,
    user::{ReplicatedUser, UserState},
};
use crate::error::{ApplyError, StoreError};

/// Where a replica keeps its users.
///
/// # Contract
///
/// - [`apply`](ReplicaStore::apply) follows the gate rules of the
///   [module docs](super), whatever order and however often changes arrive,
///   also when called from several tasks at once.
/// - Hooks run once per change that took effect, before it is visible to
///   readers; when a hook fails, that change is not written and `apply`
///   returns the error. A transactional store writes a batch all or nothing.
/// - Reads never return tombstoned users.
#[async_trait]
pub trait ReplicaStore: Send + Sync + fmt::Debug + 'static {
    /// What hooks receive: the open transaction, or [`NoTransaction`](super::NoTransaction).
    type Tx: Send;

    /// Applies the changes through the version gate, running hooks.
    async fn apply(
        &self,
        changes: Vec<Change>,
        hooks: &Hooks<Self::Tx>,
    ) -> Result<ApplyReport, ApplyError>;

    /// A live user.
    async fn get(&self, user_id: &str) -> Result<Option<ReplicatedUser>, StoreError>;

    /// The live users among `user_ids`, by id; unknown and deleted ids are absent.
    async fn get_many(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, ReplicatedUser>, StoreError>;

    /// What the store knows of a user, tombstones included.
    async fn state(&self, user_id: &str) -> Result<Option<UserState>, StoreError>;

    /// The ids of live users last changed (locally) before `before`, for reconciliation.
    async fn live_ids_applied_before(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError>;

    /// Removes the tombstones written (locally) before `before`; returns how
    /// many. Live users are not touched.
    ///
    /// A removed tombstone no longer guards its user: a change older than
    /// the deletion that arrives afterwards (a redelivery, a parked event
    /// replayed, an outbox backlog drained late) would bring the user back.
    /// Prune only what is older than the longest such delay.
    async fn prune_tombstones(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}
