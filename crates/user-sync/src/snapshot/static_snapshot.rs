//! [`StaticSnapshot`]: an in-process snapshot over a list of users.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::source::{SnapshotPage, SnapshotSource, SnapshotUser};
use crate::error::SnapshotError;

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
