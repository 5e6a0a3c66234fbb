//! The in-memory replica store.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    change::{ApplyReport, Change, Outcome},
    hooks::Hooks,
    replica_store::ReplicaStore,
    user::{DeletedUser, ReplicatedUser, UserState},
};
use crate::error::{ApplyError, StoreError};

const SHARDS: usize = 64;

type Shard = RwLock<HashMap<Box<str>, Entry>>;

/// What in-memory hooks receive: the in-memory store has no transaction.
///
/// Hooks run before the change is written; when a hook fails the change is
/// not written. Writes of a store with hooks are serialised so that no other
/// change of the user can slip in between the gate check and the write.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct NoTransaction;

/// An in-memory [`ReplicaStore`]: sharded hash maps behind read-write locks.
///
/// Compact: a user with id and display name costs one map entry and two
/// small heap strings (see docs/benchmarks.md for the measured footprint).
/// Gone when the process stops; pair it with a backfill at start-up.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Shard]>,
    hasher: RandomState,
    writer: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Entry {
    version: u64,
    /// Producer time of the newest applied change, unix nanoseconds.
    updated_at: i64,
    /// Local time of the last change, unix nanoseconds (for reconciliation).
    applied_at: i64,
    data: Data,
}

#[derive(Debug)]
enum Data {
    Live {
        display_name: Option<Box<str>>,
        /// The rarely kept fields, boxed so a display-name-only replica stays small.
        more: Option<Box<More>>,
    },
    Deleted,
}

#[derive(Debug)]
struct More {
    username: Option<Box<str>>,
    email: Option<Box<str>>,
    avatar_url: Option<Box<str>>,
}

fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

fn unboxed(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

impl Entry {
    fn live(user: ReplicatedUser, applied_at: i64) -> Self {
        let more = if user.username.is_some() || user.email.is_some() || user.avatar_url.is_some() {
            Some(Box::new(More {
                username: boxed(user.username),
                email: boxed(user.email),
                avatar_url: boxed(user.avatar_url),
            }))
        } else {
            None
        };
        Self {
            version: user.version,
            updated_at: nanos(user.updated_at),
            applied_at,
            data: Data::Live {
                display_name: boxed(user.display_name),
                more,
            },
        }
    }

    fn user(&self, user_id: &str) -> Option<ReplicatedUser> {
        let Data::Live { display_name, more } = &self.data else {
            return None;
        };
        let more = more.as_deref();
        Some(ReplicatedUser {
            user_id: user_id.to_owned(),
            version: self.version,
            display_name: unboxed(display_name.as_deref()),
            username: unboxed(more.and_then(|m| m.username.as_deref())),
            email: unboxed(more.and_then(|m| m.email.as_deref())),
            avatar_url: unboxed(more.and_then(|m| m.avatar_url.as_deref())),
            updated_at: from_nanos(self.updated_at),
        })
    }

    fn state(&self, user_id: &str) -> UserState {
        match self.user(user_id) {
            Some(user) => UserState::Live(user),
            None => UserState::Deleted(DeletedUser {
                user_id: user_id.to_owned(),
                version: self.version,
                deleted_at: from_nanos(self.updated_at),
            }),
        }
    }
}

/// What the gate decides for a change against the stored entry.
fn decide(existing: Option<&Entry>, change: &Change) -> Outcome {
    match (existing, change) {
        (None, Change::Upsert(_)) => Outcome::Inserted,
        (None, Change::Delete(_)) => Outcome::Deleted,
        (Some(e), _) if matches!(e.data, Data::Deleted) => Outcome::Ignored,
        (Some(e), Change::Upsert(u)) if u.version > e.version => Outcome::Updated,
        (Some(_), Change::Upsert(_)) => Outcome::Ignored,
        (Some(_), Change::Delete(_)) => Outcome::Deleted,
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// How many users the store holds, tombstones included.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    /// Whether the store holds no user and no tombstone.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, user_id: &str) -> &Shard {
        let h = self.hasher.hash_one(user_id);
        // The top bits: the map inside the shard uses its own hasher.
        &self.shards[(h >> 58) as usize % SHARDS]
    }

    /// Applies one change under its shard's write lock; no hooks.
    fn write(&self, change: Change, applied_at: i64) -> Outcome {
        let mut shard = write(self.shard(change.user_id()));
        let outcome = decide(shard.get(change.user_id()), &change);
        if outcome != Outcome::Ignored {
            Self::commit(&mut shard, change, applied_at);
        }
        outcome
    }

    fn commit(shard: &mut HashMap<Box<str>, Entry>, change: Change, applied_at: i64) {
        match change {
            Change::Upsert(mut user) => {
                let id = std::mem::take(&mut user.user_id);
                let entry = Entry::live(user, applied_at);
                match shard.get_mut(id.as_str()) {
                    Some(slot) => *slot = entry,
                    None => {
                        shard.insert(id.into_boxed_str(), entry);
                    }
                }
            }
            Change::Delete(d) => {
                let version = shard
                    .get(d.user_id.as_str())
                    .map_or(d.version, |e| e.version.max(d.version));
                let entry = Entry {
                    version,
                    updated_at: nanos(d.deleted_at),
                    applied_at,
                    data: Data::Deleted,
                };
                shard.insert(d.user_id.into_boxed_str(), entry);
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while holding the lock cannot leave an entry half-written
    // (entries are replaced whole), so a poisoned lock is still consistent.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl ReplicaStore for MemoryStore {
    type Tx = NoTransaction;

    async fn apply(
        &self,
        changes: Vec<Change>,
        hooks: &Hooks<NoTransaction>,
    ) -> Result<ApplyReport, ApplyError> {
        let applied_at = nanos(OffsetDateTime::now_utc());
        let mut report = ApplyReport::default();
        if hooks.is_empty() {
            for change in changes {
                report.record(self.write(change, applied_at));
            }
            return Ok(report);
        }
        // With hooks: decide, run the hooks, then write, with no other writer in between.
        let _writer = self.writer.lock().await;
        let mut tx = NoTransaction;
        for change in changes {
            let outcome = decide(
                read(self.shard(change.user_id())).get(change.user_id()),
                &change,
            );
            match (&change, outcome) {
                (_, Outcome::Ignored) => {}
                (Change::Upsert(user), _) => hooks.run_updated(&mut tx, user).await?,
                (Change::Delete(deleted), _) => {
                    let mut deleted = deleted.clone();
                    if let Some(e) =
                        read(self.shard(&deleted.user_id)).get(deleted.user_id.as_str())
                    {
                        deleted.version = deleted.version.max(e.version);
                    }
                    hooks.run_deleted(&mut tx, &deleted).await?;
                }
            }
            if outcome != Outcome::Ignored {
                Self::commit(&mut write(self.shard(change.user_id())), change, applied_at);
            }
            report.record(outcome);
        }
        Ok(report)
    }

    async fn get(&self, user_id: &str) -> Result<Option<ReplicatedUser>, StoreError> {
        Ok(read(self.shard(user_id))
            .get(user_id)
            .and_then(|e| e.user(user_id)))
    }

    async fn get_many(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, ReplicatedUser>, StoreError> {
        let mut found = HashMap::with_capacity(user_ids.len());
        for id in user_ids {
            if let Some(user) = read(self.shard(id))
                .get(id.as_str())
                .and_then(|e| e.user(id))
            {
                found.insert(id.clone(), user);
            }
        }
        Ok(found)
    }

    async fn state(&self, user_id: &str) -> Result<Option<UserState>, StoreError> {
        Ok(read(self.shard(user_id))
            .get(user_id)
            .map(|e| e.state(user_id)))
    }

    async fn live_ids_applied_before(
        &self,
        before: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let before = nanos(before);
        let mut ids = Vec::new();
        for shard in &*self.shards {
            ids.extend(
                read(shard)
                    .iter()
                    .filter(|(_, e)| e.applied_at < before && matches!(e.data, Data::Live { .. }))
                    .map(|(id, _)| id.to_string()),
            );
        }
        Ok(ids)
    }

    async fn prune_tombstones(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before = nanos(before);
        // Serialised with hooked writes, which check the gate and write in two steps.
        let _writer = self.writer.lock().await;
        let mut pruned = 0;
        for shard in &*self.shards {
            let mut shard = write(shard);
            let len = shard.len();
            shard.retain(|_, e| !(matches!(e.data, Data::Deleted) && e.applied_at < before));
            pruned += (len - shard.len()) as u64;
        }
        Ok(pruned)
    }
}
