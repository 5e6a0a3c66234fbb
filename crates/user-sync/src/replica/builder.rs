//! [`UserReplicaBuilder`]: the fields a replica keeps, its hooks, batching.

use std::{fmt, time::Duration};

use super::{batch::BatchOptions, user_replica::UserReplica};
use crate::store::{DeletedUser, Fields, HookFuture, Hooks, ReplicaStore, ReplicatedUser};

/// Builds a [`UserReplica`]: fields to keep and hooks.
#[must_use]
pub struct UserReplicaBuilder<S: ReplicaStore> {
    name: String,
    store: S,
    fields: Fields,
    hooks: Hooks<S::Tx>,
    batch: Option<BatchOptions>,
}

impl<S: ReplicaStore> fmt::Debug for UserReplicaBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserReplicaBuilder")
            .field("name", &self.name)
            .field("fields", &self.fields)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl<S: ReplicaStore> UserReplicaBuilder<S> {
    pub(super) fn new(name: String, store: S) -> Self {
        Self {
            name,
            store,
            fields: Fields::default(),
            hooks: Hooks::default(),
            batch: None,
        }
    }

    /// The profile fields to keep (default: [`Fields::DISPLAY_NAME`]).
    pub fn keep(mut self, fields: Fields) -> Self {
        self.fields = fields;
        self
    }

    /// Adds a hook run for each insert or update that took effect, in the
    /// store's transaction (PostgreSQL) before the change is visible.
    pub fn on_updated<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut S::Tx, &'a ReplicatedUser) -> HookFuture<'a> + Send + Sync + 'static,
    {
        self.hooks.on_updated(hook);
        self
    }

    /// Adds a hook run once per deleted user, in the same transaction as the
    /// tombstone (PostgreSQL): the place to anonymise the user's data.
    pub fn on_deleted<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut S::Tx, &'a DeletedUser) -> HookFuture<'a> + Send + Sync + 'static,
    {
        self.hooks.on_deleted(hook);
        self
    }

    /// Groups the events the router delivers into batches of at most
    /// `max_events`, waiting at most `max_wait` after the first one, and
    /// applies each batch with one [`apply_all`](UserReplica::apply_all)
    /// (one transaction on PostgreSQL: the way to thousands of events per
    /// second). Each delivery is acked once its batch committed; a failed
    /// batch fails all its deliveries (transient: they are retried, and the
    /// version gate makes the retry harmless). Invalid events are refused
    /// before batching, alone. Batches can only be as large as the router's
    /// [`concurrency`](tessera_event_bus::Router::concurrency) allows (default 16): raise it,
    /// with the prefetch, to batch more.
    ///
    /// Off by default: each delivery is applied alone.
    pub fn batch(mut self, max_events: usize, max_wait: Duration) -> Self {
        self.batch = Some(BatchOptions {
            max_events: max_events.max(1),
            max_wait,
        });
        self
    }

    /// The replica.
    pub fn build(self) -> UserReplica<S> {
        UserReplica::from_parts(self.name, self.store, self.fields, self.hooks, self.batch)
    }
}
