//! [`Backfill`]: backfill and reconciliation runs, once or on a schedule.

use std::{collections::HashSet, time::Duration};

use time::OffsetDateTime;

use super::source::SnapshotSource;
use crate::{
    UserReplica,
    error::{BackfillError, SnapshotError},
    store::{ApplyReport, Change, DeletedUser, ReplicaStore},
};

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
        // Every cursor handed out so far: a source whose cursors come back
        // round (a cycle of any length, not only the same cursor twice)
        // would otherwise be paged forever.
        let mut cursors: HashSet<String> = HashSet::new();
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
                Some(next) if cursors.contains(&next) => {
                    return Err(SnapshotError::CursorStuck(next).into());
                }
                Some(next) => {
                    cursors.insert(next.clone());
                    cursor = Some(next);
                }
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
