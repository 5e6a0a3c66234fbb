//! [`Hooks`]: the replica's `on_updated` and `on_deleted` hooks, which a
//! store runs for the changes that took effect.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use tessera_event_bus::BoxError;

use super::user::{DeletedUser, ReplicatedUser};
use crate::error::ApplyError;

/// The future a hook returns.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// A hook on users of type `U` (live or deleted).
type Hook<T, U> = Arc<dyn for<'a> Fn(&'a mut T, &'a U) -> HookFuture<'a> + Send + Sync>;
type UpdatedHook<T> = Hook<T, ReplicatedUser>;
type DeletedHook<T> = Hook<T, DeletedUser>;

/// Runs `hooks` in order on `user` (whose id is `user_id`); the first error stops them.
async fn run_all<T, U>(
    hooks: &[Hook<T, U>],
    tx: &mut T,
    user: &U,
    user_id: &str,
) -> Result<(), ApplyError> {
    for hook in hooks {
        hook(tx, user).await.map_err(|source| ApplyError::Hook {
            user_id: user_id.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// The replica's hooks, run by the store for changes that took effect.
///
/// `T` is the store's transaction type ([`ReplicaStore::Tx`](super::ReplicaStore::Tx)): the open
/// `sqlx::Transaction` for PostgreSQL, [`NoTransaction`](super::NoTransaction) in memory.
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
        run_all(&self.on_updated, tx, user, &user.user_id).await
    }

    /// Runs the `on_deleted` hooks in order; the first error stops them.
    pub async fn run_deleted(&self, tx: &mut T, user: &DeletedUser) -> Result<(), ApplyError> {
        run_all(&self.on_deleted, tx, user, &user.user_id).await
    }
}
