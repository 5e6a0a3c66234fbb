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

mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::{collections::HashMap, fmt, future::Future, ops::BitOr, pin::Pin, sync::Arc};

use async_trait::async_trait;
use tessera_event_bus::BoxError;
use time::OffsetDateTime;

pub use self::memory::{MemoryStore, NoTransaction};
use crate::error::{ApplyError, StoreError};

/// Which optional profile fields a replica keeps (data minimisation).
///
/// The user id and version are always kept. Fields not kept are dropped
/// before anything reaches the store. The default keeps only the display name.
///
/// ```
/// use tessera_user_sync::store::Fields;
///
/// let kept = Fields::DISPLAY_NAME | Fields::AVATAR_URL;
/// assert!(kept.contains(Fields::AVATAR_URL));
/// assert!(!kept.contains(Fields::EMAIL));
/// assert_eq!(Fields::default(), Fields::DISPLAY_NAME);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fields(u8);

impl Fields {
    /// Only the user id and version.
    pub const NONE: Self = Self(0);
    /// `display_name`.
    pub const DISPLAY_NAME: Self = Self(1);
    /// `username`.
    pub const USERNAME: Self = Self(2);
    /// `email` (personal data: keep it only if the service needs it).
    pub const EMAIL: Self = Self(4);
    /// `avatar_url`.
    pub const AVATAR_URL: Self = Self(8);
    /// Every profile field.
    pub const ALL: Self = Self(15);

    /// Whether all of `other`'s fields are in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::DISPLAY_NAME
    }
}

impl BitOr for Fields {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::DISPLAY_NAME, "display_name"),
            (Self::USERNAME, "username"),
            (Self::EMAIL, "email"),
            (Self::AVATAR_URL, "avatar_url"),
        ];
        f.debug_set()
            .entries(
                names
                    .iter()
                    .filter(|(flag, _)| self.contains(*flag))
                    .map(|(_, n)| n),
            )
            .finish()
    }
}

/// A live user as a replica keeps it: only the fields the replica declared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicatedUser {
    /// The user id.
    pub user_id: String,
    /// The version of the newest change applied.
    pub version: u64,
    /// The display name, if kept.
    pub display_name: Option<String>,
    /// The username, if kept and the user has one.
    pub username: Option<String>,
    /// The email address, if kept and the user has one.
    pub email: Option<String>,
    /// The avatar URL, if kept and the user has one.
    pub avatar_url: Option<String>,
    /// When the newest applied change happened at the producer.
    pub updated_at: OffsetDateTime,
}

impl ReplicatedUser {
    /// A user with no profile fields.
    pub fn new(user_id: impl Into<String>, version: u64, updated_at: OffsetDateTime) -> Self {
        Self {
            user_id: user_id.into(),
            version,
            display_name: None,
            username: None,
            email: None,
            avatar_url: None,
            updated_at,
        }
    }

    /// Sets the display name.
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Sets the username.
    #[must_use]
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the email address.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the avatar URL.
    #[must_use]
    pub fn with_avatar_url(mut self, url: impl Into<String>) -> Self {
        self.avatar_url = Some(url.into());
        self
    }

    /// Drops the fields not in `fields`.
    #[must_use]
    pub fn minimised(mut self, fields: Fields) -> Self {
        if !fields.contains(Fields::DISPLAY_NAME) {
            self.display_name = None;
        }
        if !fields.contains(Fields::USERNAME) {
            self.username = None;
        }
        if !fields.contains(Fields::EMAIL) {
            self.email = None;
        }
        if !fields.contains(Fields::AVATAR_URL) {
            self.avatar_url = None;
        }
        self
    }
}

/// A deleted user: what a tombstone records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletedUser {
    /// The user id.
    pub user_id: String,
    /// The higher of the deletion's version and the version stored before it.
    pub version: u64,
    /// When the deletion happened at the producer (or when reconciliation found the user gone).
    pub deleted_at: OffsetDateTime,
}

impl DeletedUser {
    /// A deletion of `user_id` at `version`.
    pub fn new(user_id: impl Into<String>, version: u64, deleted_at: OffsetDateTime) -> Self {
        Self {
            user_id: user_id.into(),
            version,
            deleted_at,
        }
    }
}

/// What a replica knows of a user: live, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserState {
    /// The user exists.
    Live(ReplicatedUser),
    /// The user was deleted; nothing applies any more.
    Deleted(DeletedUser),
}

impl UserState {
    /// The stored version.
    pub fn version(&self) -> u64 {
        match self {
            Self::Live(u) => u.version,
            Self::Deleted(d) => d.version,
        }
    }
}

/// One change for a store to apply through the version gate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Insert or replace the user if this version is newer.
    Upsert(ReplicatedUser),
    /// Tombstone the user unless already deleted.
    Delete(DeletedUser),
}

impl Change {
    /// The user id.
    pub fn user_id(&self) -> &str {
        match self {
            Self::Upsert(u) => &u.user_id,
            Self::Delete(d) => &d.user_id,
        }
    }

    /// The version.
    pub fn version(&self) -> u64 {
        match self {
            Self::Upsert(u) => u.version,
            Self::Delete(d) => d.version,
        }
    }
}

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A user the replica did not know was inserted.
    Inserted,
    /// A live user was replaced by a newer version.
    Updated,
    /// A tombstone was written.
    Deleted,
    /// Nothing changed: the version was not newer, or the user is deleted.
    Ignored,
}

impl Outcome {
    /// The metric label: `inserted`, `updated`, `deleted`, `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inserted => "inserted",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Ignored => "ignored",
        }
    }
}

/// Counts of what a batch of changes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ApplyReport {
    /// Users inserted.
    pub inserted: usize,
    /// Users replaced by a newer version.
    pub updated: usize,
    /// Tombstones written.
    pub deleted: usize,
    /// Changes that were no-ops (stale, duplicate, after deletion, or
    /// superseded by a newer change of the same user in the batch).
    pub ignored: usize,
}

impl ApplyReport {
    /// Counts one outcome.
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Inserted => self.inserted += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Ignored => self.ignored += 1,
        }
    }

    /// The outcome of a batch of one change.
    pub fn single(&self) -> Outcome {
        if self.inserted > 0 {
            Outcome::Inserted
        } else if self.updated > 0 {
            Outcome::Updated
        } else if self.deleted > 0 {
            Outcome::Deleted
        } else {
            Outcome::Ignored
        }
    }

    /// Changes that took effect.
    pub fn applied(&self) -> usize {
        self.inserted + self.updated + self.deleted
    }

    /// Adds another report's counts.
    pub fn merge(&mut self, other: Self) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.ignored += other.ignored;
    }
}

/// The future a hook returns.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

type UpdatedHook<T> =
    Arc<dyn for<'a> Fn(&'a mut T, &'a ReplicatedUser) -> HookFuture<'a> + Send + Sync>;
type DeletedHook<T> =
    Arc<dyn for<'a> Fn(&'a mut T, &'a DeletedUser) -> HookFuture<'a> + Send + Sync>;

/// The replica's hooks, run by the store for changes that took effect.
///
/// `T` is the store's transaction type ([`ReplicaStore::Tx`]): the open
/// `sqlx::Transaction` for PostgreSQL, [`NoTransaction`] in memory.
pub struct Hooks<T> {
    on_updated: Vec<UpdatedHook<T>>,
    on_deleted: Vec<DeletedHook<T>>,
}

impl<T> Default for Hooks<T> {
    fn default() -> Self {
        Self {
            on_updated: Vec::new(),
            on_deleted: Vec::new(),
        }
    }
}

impl<T> Clone for Hooks<T> {
    fn clone(&self) -> Self {
        Self {
            on_updated: self.on_updated.clone(),
            on_deleted: self.on_deleted.clone(),
        }
    }
}

impl<T> fmt::Debug for Hooks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_updated", &self.on_updated.len())
            .field("on_deleted", &self.on_deleted.len())
            .finish()
    }
}

impl<T> Hooks<T> {
    /// Adds a hook run for every insert or update that took effect.
    pub fn on_updated<F>(&mut self, hook: F)
    where
        F: for<'a> Fn(&'a mut T, &'a ReplicatedUser) -> HookFuture<'a> + Send + Sync + 'static,
    {
        self.on_updated.push(Arc::new(hook));
    }

    /// Adds a hook run for every new tombstone.
    pub fn on_deleted<F>(&mut self, hook: F)
    where
        F: for<'a> Fn(&'a mut T, &'a DeletedUser) -> HookFuture<'a> + Send + Sync + 'static,
    {
        self.on_deleted.push(Arc::new(hook));
    }

    /// Whether no hook is registered.
    pub fn is_empty(&self) -> bool {
        self.on_updated.is_empty() && self.on_deleted.is_empty()
    }

    /// Runs the `on_updated` hooks in order; the first error stops them.
    pub async fn run_updated(&self, tx: &mut T, user: &ReplicatedUser) -> Result<(), ApplyError> {
        for hook in &self.on_updated {
            hook(tx, user).await.map_err(|source| ApplyError::Hook {
                user_id: user.user_id.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Runs the `on_deleted` hooks in order; the first error stops them.
    pub async fn run_deleted(&self, tx: &mut T, user: &DeletedUser) -> Result<(), ApplyError> {
        for hook in &self.on_deleted {
            hook(tx, user).await.map_err(|source| ApplyError::Hook {
                user_id: user.user_id.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Where a replica keeps its users.
///
/// # Contract
///
/// - [`apply`](ReplicaStore::apply) follows the gate rules of the
///   [module docs](self), whatever order and however often changes arrive,
///   also when called from several tasks at once.
/// - Hooks run once per change that took effect, before it is visible to
///   readers; when a hook fails, that change is not written and `apply`
///   returns the error. A transactional store writes a batch all or nothing.
/// - Reads never return tombstoned users.
#[async_trait]
pub trait ReplicaStore: Send + Sync + fmt::Debug + 'static {
    /// What hooks receive: the open transaction, or [`NoTransaction`].
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
