//! [`UserReplica`]: applies user events to its store, reads users back, and
//! reports what it did (metrics, lag).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tessera_event_bus::{Codec, Router, router::RouteOptions};
use time::OffsetDateTime;

use super::{
    batch::{BatchOptions, Batcher},
    builder::UserReplicaBuilder,
    service::ReplicaService,
};
use crate::{
    error::{ApplyError, StoreError},
    events::{Profile, UserEvent},
    store::{
        ApplyReport, Change, DeletedUser, Fields, Hooks, MemoryStore, Outcome, ReplicaStore,
        ReplicatedUser, UserState,
    },
};

/// Counter of applied events by outcome.
pub const EVENTS: &str = "tessera_user_replica_events_total";
/// Gauge: seconds between now and the newest applied event's `occurred_at`.
pub const LAG: &str = "tessera_user_replica_lag_seconds";
/// Gauge: the newest applied event's `occurred_at`, unix seconds.
pub const NEWEST: &str = "tessera_user_replica_newest_event_seconds";

/// A local replica of users, fed by user events. Cheap to clone (shared state).
pub struct UserReplica<S: ReplicaStore> {
    pub(super) inner: Arc<Inner<S>>,
}

/// What the clones of a replica share.
pub(super) struct Inner<S: ReplicaStore> {
    name: Arc<str>,
    store: S,
    fields: Fields,
    hooks: Hooks<S::Tx>,
    /// Newest applied `occurred_at` in unix nanoseconds; `i64::MIN` before the first.
    newest: AtomicI64,
    /// When the lag gauges were last set, in nanoseconds since `started`.
    lag_reported: AtomicU64,
    started: Instant,
    /// Router deliveries are grouped into batches when set.
    pub(super) batcher: Option<Batcher>,
}

/// How often applying events refreshes the lag gauges at most.
const LAG_REPORT_INTERVAL: Duration = Duration::from_millis(100);

impl<S: ReplicaStore> Clone for UserReplica<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: ReplicaStore> fmt::Debug for UserReplica<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserReplica")
            .field("name", &self.inner.name)
            .field("fields", &self.inner.fields)
            .field("store", &self.inner.store)
            .field("hooks", &self.inner.hooks)
            .finish()
    }
}

impl UserReplica<MemoryStore> {
    /// An in-memory replica named `name` keeping only display names, without hooks.
    pub fn in_memory(name: impl Into<String>) -> Self {
        Self::builder(name, MemoryStore::new()).build()
    }
}

impl<S: ReplicaStore> UserReplica<S> {
    /// A builder for a replica named `name` (used as a metric label, usually
    /// the consumer group) on `store`.
    pub fn builder(name: impl Into<String>, store: S) -> UserReplicaBuilder<S> {
        UserReplicaBuilder::new(name.into(), store)
    }

    /// A replica as its builder describes it.
    pub(super) fn from_parts(
        name: String,
        store: S,
        fields: Fields,
        hooks: Hooks<S::Tx>,
        batch: Option<BatchOptions>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: Arc::from(name),
                store,
                fields,
                hooks,
                newest: AtomicI64::new(i64::MIN),
                lag_reported: AtomicU64::new(0),
                started: Instant::now(),
                batcher: batch.map(Batcher::new),
            }),
        }
    }

    /// The replica's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The fields this replica keeps.
    pub fn fields(&self) -> Fields {
        self.inner.fields
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Applies one event through the version gate.
    ///
    /// `Ok(Outcome::Ignored)` for stale, duplicate and after-deletion events.
    /// An invalid event is an error and changes nothing.
    pub async fn apply(&self, event: impl Into<UserEvent>) -> Result<Outcome, ApplyError> {
        let event = event.into();
        let occurred_at = event.occurred_at();
        let change = match self.change(event) {
            Ok(change) => change,
            Err(e) => {
                self.count("invalid", 1);
                return Err(e);
            }
        };
        let report = self.apply_changes(vec![change], Some(occurred_at)).await?;
        Ok(report.single())
    }

    /// Applies several events as one batch (one transaction for PostgreSQL).
    ///
    /// Every event is validated first; if one is invalid nothing is applied.
    pub async fn apply_all(
        &self,
        events: impl IntoIterator<Item = UserEvent>,
    ) -> Result<ApplyReport, ApplyError> {
        let mut newest = OffsetDateTime::UNIX_EPOCH;
        let mut changes = Vec::new();
        for event in events {
            newest = newest.max(event.occurred_at());
            match self.change(event) {
                Ok(change) => changes.push(change),
                Err(e) => {
                    self.count("invalid", 1);
                    return Err(e);
                }
            }
        }
        if changes.is_empty() {
            return Ok(ApplyReport::default());
        }
        self.apply_changes(changes, Some(newest)).await
    }

    /// Applies prepared changes (minimised here too); used by backfill and reconciliation.
    pub(crate) async fn apply_changes(
        &self,
        changes: Vec<Change>,
        newest: Option<OffsetDateTime>,
    ) -> Result<ApplyReport, ApplyError> {
        let fields = self.inner.fields;
        let changes = changes
            .into_iter()
            .map(|c| match c {
                Change::Upsert(u) => Change::Upsert(u.minimised(fields)),
                other => other,
            })
            .collect();
        match self.inner.store.apply(changes, &self.inner.hooks).await {
            Ok(report) => {
                for (outcome, n) in [
                    (Outcome::Inserted, report.inserted),
                    (Outcome::Updated, report.updated),
                    (Outcome::Deleted, report.deleted),
                    (Outcome::Ignored, report.ignored),
                ] {
                    if n > 0 {
                        self.count(outcome.as_str(), n as u64);
                    }
                }
                if let Some(newest) = newest {
                    self.observe(newest);
                }
                Ok(report)
            }
            Err(e) => {
                self.count("failed", 1);
                Err(e)
            }
        }
    }

    fn change(&self, event: UserEvent) -> Result<Change, ApplyError> {
        event.validate()?;
        Ok(match event {
            UserEvent::Registered(e) => self.upsert(e.user_id, e.version, e.profile, e.occurred_at),
            UserEvent::ProfileUpdated(e) => {
                self.upsert(e.user_id, e.version, e.profile, e.occurred_at)
            }
            UserEvent::Deleted(e) => {
                Change::Delete(DeletedUser::new(e.user_id, e.version, e.occurred_at))
            }
        })
    }

    fn upsert(
        &self,
        user_id: String,
        version: u64,
        profile: Profile,
        occurred_at: OffsetDateTime,
    ) -> Change {
        let fields = self.inner.fields;
        let keep = |flag: Fields, value: Option<String>| value.filter(|_| fields.contains(flag));
        Change::Upsert(ReplicatedUser {
            user_id,
            version,
            display_name: keep(Fields::DISPLAY_NAME, Some(profile.display_name)),
            username: keep(Fields::USERNAME, profile.username),
            email: keep(Fields::EMAIL, profile.email),
            avatar_url: keep(Fields::AVATAR_URL, profile.avatar_url),
            updated_at: occurred_at,
        })
    }

    /// Counts `n` events with `outcome` in the events metric.
    pub(super) fn count(&self, outcome: &'static str, n: u64) {
        metrics::counter!(EVENTS, "replica" => Arc::clone(&self.inner.name), "outcome" => outcome)
            .increment(n);
    }

    fn observe(&self, occurred_at: OffsetDateTime) {
        let nanos = i64::try_from(occurred_at.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        self.inner.newest.fetch_max(nanos, Ordering::Relaxed);
        // Refreshing the gauges on every event would cost more than applying it.
        let now = u64::try_from(self.inner.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.inner.lag_reported.load(Ordering::Relaxed);
        if last == 0 || now.saturating_sub(last) >= LAG_REPORT_INTERVAL.as_nanos() as u64 {
            self.inner.lag_reported.store(now.max(1), Ordering::Relaxed);
            self.report_lag();
        }
    }

    /// A live user, or `None` when unknown or deleted.
    pub async fn get(&self, user_id: &str) -> Result<Option<ReplicatedUser>, StoreError> {
        self.inner.store.get(user_id).await
    }

    /// The live users among `user_ids`, by id, in one store round trip
    /// (for a GraphQL data loader: "comments with usernames").
    pub async fn get_many<I>(
        &self,
        user_ids: I,
    ) -> Result<HashMap<String, ReplicatedUser>, StoreError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let ids: Vec<String> = user_ids.into_iter().map(Into::into).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.inner.store.get_many(&ids).await
    }

    /// What the replica knows of a user, tombstones included.
    pub async fn state(&self, user_id: &str) -> Result<Option<UserState>, StoreError> {
        self.inner.store.state(user_id).await
    }

    /// Removes tombstones written more than `retention` ago; returns how many.
    ///
    /// Tombstones keep late changes from resurrecting deleted users, so
    /// `retention` must exceed the longest time an older change can still
    /// arrive: the broker's redelivery and retry delays, how long parked
    /// events may wait before someone replays them, and how far behind the
    /// producer's outbox can fall. Days, not minutes; run it from a
    /// maintenance job (docs/operations.md).
    pub async fn prune_tombstones(&self, retention: Duration) -> Result<u64, StoreError> {
        // A retention beyond the calendar prunes nothing.
        let before = time::Duration::try_from(retention)
            .ok()
            .and_then(|retention| OffsetDateTime::now_utc().checked_sub(retention))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let pruned = self.inner.store.prune_tombstones(before).await?;
        tracing::info!(pruned, ?retention, "pruned replica tombstones");
        Ok(pruned)
    }

    /// The newest `occurred_at` this replica applied (since it started).
    pub fn newest_applied(&self) -> Option<OffsetDateTime> {
        match self.inner.newest.load(Ordering::Relaxed) {
            i64::MIN => None,
            n => OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok(),
        }
    }

    /// Now minus the newest applied `occurred_at` (zero if that is in the
    /// future); `None` before the first event.
    pub fn lag(&self) -> Option<Duration> {
        let newest = self.newest_applied()?;
        let lag = OffsetDateTime::now_utc() - newest;
        Some(lag.try_into().unwrap_or(Duration::ZERO))
    }

    /// Sets the lag gauges now; call it periodically so the lag grows while no event arrives.
    pub fn report_lag(&self) {
        if let (Some(lag), Some(newest)) = (self.lag(), self.newest_applied()) {
            metrics::gauge!(LAG, "replica" => Arc::clone(&self.inner.name)).set(lag.as_secs_f64());
            metrics::gauge!(NEWEST, "replica" => Arc::clone(&self.inner.name))
                .set(newest.unix_timestamp_nanos() as f64 / 1e9);
        }
    }

    /// The `tower::Service` that applies [`EventRequest`](tessera_event_bus::router::EventRequest)s
    /// of the three user events; register it with [`Router::handle_service`].
    pub fn service(&self) -> ReplicaService<S> {
        ReplicaService::new(self.clone())
    }

    /// Registers handlers for the three user events on `router`.
    ///
    /// Invalid events (empty id, version out of range, subject not matching
    /// the user id) are permanent errors (dead-lettered with the reason);
    /// undecodable payloads are dead-lettered by the router; store and hook
    /// failures are transient (retried, nothing applied).
    pub fn route<C: Codec>(&self, router: Router<C>) -> Router<C> {
        self.route_with(router, &RouteOptions::new())
    }

    /// Like [`route`](Self::route), with the same options for the three handlers.
    pub fn route_with<C: Codec>(&self, router: Router<C>, options: &RouteOptions) -> Router<C> {
        use crate::events::{UserDeleted, UserProfileUpdated, UserRegistered};
        router
            .handle_service::<UserRegistered, _>(self.service(), options.clone())
            .handle_service::<UserProfileUpdated, _>(self.service(), options.clone())
            .handle_service::<UserDeleted, _>(self.service(), options.clone())
    }
}
