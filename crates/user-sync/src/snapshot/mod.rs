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

#[cfg(feature = "http")]
pub mod http;

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    UserReplica,
    error::{BackfillError, SnapshotError},
    events::{MAX_VERSION, Profile},
    store::{ApplyReport, Change, DeletedUser, ReplicaStore, ReplicatedUser},
};

/// One page of the user service's snapshot, as the HTTP endpoint returns it:
///
/// ```json
/// {"users": [{"user_id": "u1", "version": 3, "display_name": "Ada", "username": "ada",
///             "email": "ada@example.com", "avatar_url": null, "updated_at": "2026-11-28T12:00:00Z"}],
///  "next": "u1"}
/// ```
///
/// `next` is the opaque cursor for the following page, `null` (or absent) on
/// the last one. Users are deleted users' absence: a deleted user is not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SnapshotPage {
    /// The users of this page, in cursor order.
    pub users: Vec<SnapshotUser>,
    /// The cursor of the next page; `None` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

impl SnapshotPage {
    /// A page.
    pub fn new(users: Vec<SnapshotUser>, next: Option<String>) -> Self {
        Self { users, next }
    }
}

/// A user in a snapshot: the same fields as a `UserRegistered` event's data,
/// with `updated_at` (optional) in place of `occurred_at`. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SnapshotUser {
    /// The user id.
    pub user_id: String,
    /// The user's current version (that of its newest event).
    pub version: u64,
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// When the user last changed; the fetch time when absent.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<OffsetDateTime>,
}

impl SnapshotUser {
    /// A user with a display name and no optional fields.
    pub fn new(user_id: impl Into<String>, version: u64, display_name: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            version,
            profile: Profile {
                display_name: display_name.into(),
                ..Profile::default()
            },
            updated_at: None,
        }
    }

    fn into_change(self, fetched_at: OffsetDateTime) -> Result<Change, SnapshotError> {
        if self.user_id.trim().is_empty() {
            return Err(SnapshotError::Malformed(
                "a user has an empty user_id".to_owned(),
            ));
        }
        if self.version == 0 || self.version > MAX_VERSION {
            return Err(SnapshotError::Malformed(format!(
                "user `{}` has version {} (1 to 2^53 - 1)",
                self.user_id, self.version
            )));
        }
        let Profile {
            display_name,
            username,
            email,
            avatar_url,
        } = self.profile;
        Ok(Change::Upsert(ReplicatedUser {
            user_id: self.user_id,
            version: self.version,
            display_name: Some(display_name),
            username,
            email,
            avatar_url,
            updated_at: self.updated_at.unwrap_or(fetched_at),
        }))
    }
}

/// Where a replica reads the full set of users from: pages in a stable cursor order.
#[async_trait]
pub trait SnapshotSource: Send + Sync + fmt::Debug {
    /// The page after `after` (`None`: the first page), with at most about `limit` users.
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError>;
}

#[async_trait]
impl<T: SnapshotSource + ?Sized> SnapshotSource for Arc<T> {
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError> {
        (**self).page(after, limit).await
    }
}

/// An in-process snapshot over a list of users, paged by user id; for tests
/// and for a user service that is its own consumer. Cheap to clone (shared list).
#[derive(Debug, Clone, Default)]
pub struct StaticSnapshot {
    users: Arc<Mutex<Vec<SnapshotUser>>>,
}

impl StaticSnapshot {
    /// A snapshot of `users`.
    pub fn new(users: Vec<SnapshotUser>) -> Self {
        let snapshot = Self::default();
        snapshot.set(users);
        snapshot
    }

    /// Replaces the users.
    pub fn set(&self, mut users: Vec<SnapshotUser>) {
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        *self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = users;
    }

    /// Inserts or replaces one user.
    pub fn upsert(&self, user: SnapshotUser) {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match users.binary_search_by(|u| u.user_id.cmp(&user.user_id)) {
            Ok(i) => users[i] = user,
            Err(i) => users.insert(i, user),
        }
    }

    /// Removes one user.
    pub fn remove(&self, user_id: &str) {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        users.retain(|u| u.user_id != user_id);
    }
}

#[async_trait]
impl SnapshotSource for StaticSnapshot {
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError> {
        let users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = after.map_or(0, |a| users.partition_point(|u| u.user_id.as_str() <= a));
        let end = (start + limit.max(1) as usize).min(users.len());
        let page: Vec<SnapshotUser> = users[start..end].to_vec();
        let next = (end < users.len()).then(|| users[end - 1].user_id.clone());
        Ok(SnapshotPage::new(page, next))
    }
}

/// What a backfill or reconciliation run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BackfillReport {
    /// Pages fetched.
    pub pages: usize,
    /// Users listed by the snapshot.
    pub users: usize,
    /// What applying them did.
    pub applied: ApplyReport,
    /// Live users tombstoned because the snapshot no longer has them (reconciliation only).
    pub removed: usize,
}

/// Runs a backfill or a reconciliation against a snapshot source.
#[derive(Debug, Clone)]
#[must_use]
pub struct Backfill<T> {
    source: T,
    page_size: u32,
    grace: Duration,
}

impl<T: SnapshotSource> Backfill<T> {
    /// A run over `source`: pages of 500, a grace period of 60 s.
    pub fn new(source: T) -> Self {
        Self {
            source,
            page_size: 500,
            grace: Duration::from_secs(60),
        }
    }

    /// Users per page asked for (default 500, at least 1).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Reconciliation removes only users whose last local change is older
    /// than the run's start minus this (default 60 s), leaving room for a
    /// snapshot read from a lagging database replica.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Pages through the snapshot, applying each user as a versioned upsert.
    /// Pages applied before an error stay applied; run again to resume.
    pub async fn run<S: ReplicaStore>(
        &self,
        replica: &UserReplica<S>,
    ) -> Result<BackfillReport, BackfillError> {
        self.pages(replica, None).await
    }

    /// Pages through the snapshot like [`run`](Self::run), then tombstones
    /// the replica's live users the snapshot no longer lists (with hooks).
    pub async fn reconcile<S: ReplicaStore>(
        &self,
        replica: &UserReplica<S>,
    ) -> Result<BackfillReport, BackfillError> {
        let started = OffsetDateTime::now_utc();
        let mut seen = HashSet::new();
        let mut report = self.pages(replica, Some(&mut seen)).await?;
        let cutoff = started - self.grace;
        let gone: Vec<Change> = replica
            .store()
            .live_ids_applied_before(cutoff)
            .await?
            .into_iter()
            .filter(|id| !seen.contains(id))
            .map(|id| Change::Delete(DeletedUser::new(id, 1, started)))
            .collect();
        if !gone.is_empty() {
            tracing::info!(
                replica = replica.name(),
                removed = gone.len(),
                "reconciliation removes users the snapshot no longer has"
            );
            let removed = replica.apply_changes(gone, None).await?;
            report.removed = removed.deleted;
        }
        Ok(report)
    }

    async fn pages<S: ReplicaStore>(
        &self,
        replica: &UserReplica<S>,
        mut seen: Option<&mut HashSet<String>>,
    ) -> Result<BackfillReport, BackfillError> {
        let mut report = BackfillReport::default();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.source.page(cursor.as_deref(), self.page_size).await?;
            report.pages += 1;
            report.users += page.users.len();
            let fetched_at = OffsetDateTime::now_utc();
            let changes = page
                .users
                .into_iter()
                .map(|u| u.into_change(fetched_at))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(seen) = seen.as_deref_mut() {
                seen.extend(changes.iter().map(|c| c.user_id().to_owned()));
            }
            if !changes.is_empty() {
                report
                    .applied
                    .merge(replica.apply_changes(changes, None).await?);
            }
            match page.next {
                None => return Ok(report),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(SnapshotError::CursorStuck(next).into());
                }
                Some(next) => cursor = Some(next),
            }
        }
    }
}

impl<T: SnapshotSource + 'static> Backfill<T> {
    /// Reconciles every `interval` in a background task (the first run after
    /// one interval) until the handle is dropped or stopped. Failed runs are
    /// logged and retried at the next tick.
    pub fn spawn_reconciliation<S: ReplicaStore>(
        self,
        replica: UserReplica<S>,
        interval: Duration,
    ) -> ReconciliationHandle {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match self.reconcile(&replica).await {
                    Ok(report) => tracing::info!(
                        replica = replica.name(),
                        users = report.users,
                        removed = report.removed,
                        "reconciliation finished"
                    ),
                    Err(error) => {
                        tracing::warn!(replica = replica.name(), %error, "reconciliation failed; retrying at the next tick");
                    }
                }
            }
        });
        ReconciliationHandle { task }
    }
}

/// Stops a scheduled reconciliation when dropped or [`stop`](Self::stop)ped.
#[derive(Debug)]
pub struct ReconciliationHandle {
    task: tokio::task::JoinHandle<()>,
}

impl ReconciliationHandle {
    /// Stops the schedule (a run in progress is abandoned; it is safe to abandon).
    pub fn stop(self) {}
}

impl Drop for ReconciliationHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
