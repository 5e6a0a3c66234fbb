//! [`MemoryUserDirectory`]: users in memory, events through an [`EventPublisher`].

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use tessera_event_bus::EventPublisher;
use time::OffsetDateTime;

use super::{
    directory::{Registration, UserDirectory, UserRecord, check_id},
    error::ProducerError,
};
use crate::{
    error::SnapshotError,
    events::{Profile, UserDeleted, UserProfileUpdated, UserRegistered},
    snapshot::{SnapshotPage, SnapshotSource, SnapshotUser},
};

/// An in-memory [`UserDirectory`] publishing through an [`EventPublisher`].
/// Cheap to clone (shared state).
///
/// Changes are serialised; a change is visible only once its event was
/// published (confirmed by the bus), and undone when publishing fails.
#[derive(Debug, Clone)]
pub struct MemoryUserDirectory {
    users: Arc<tokio::sync::Mutex<BTreeMap<String, UserRecord>>>,
    events: EventPublisher,
}

impl MemoryUserDirectory {
    /// An empty directory publishing through `events`.
    pub fn new(events: EventPublisher) -> Self {
        Self {
            users: Arc::default(),
            events,
        }
    }

    /// How many users exist, deleted ones included.
    pub async fn len(&self) -> usize {
        self.users.lock().await.len()
    }

    /// Whether there is no user.
    pub async fn is_empty(&self) -> bool {
        self.users.lock().await.is_empty()
    }
}

/// The record of `user_id` if it may change: it exists and is not deleted.
fn live<'a>(
    users: &'a BTreeMap<String, UserRecord>,
    user_id: &str,
) -> Result<&'a UserRecord, ProducerError> {
    let current = users
        .get(user_id)
        .ok_or_else(|| ProducerError::NotFound(user_id.to_owned()))?;
    if current.is_deleted() {
        return Err(ProducerError::Deleted(user_id.to_owned()));
    }
    Ok(current)
}

#[async_trait]
impl UserDirectory for MemoryUserDirectory {
    async fn register(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<Registration, ProducerError> {
        check_id(user_id)?;
        let mut users = self.users.lock().await;
        if let Some(existing) = users.get(user_id) {
            return Ok(Registration::Existing(existing.clone()));
        }
        let now = OffsetDateTime::now_utc();
        let record = UserRecord {
            user_id: user_id.to_owned(),
            version: 1,
            profile,
            deleted_at: None,
            updated_at: now,
        };
        let event =
            UserRegistered::from_profile(user_id, 1, record.profile.clone()).occurred_at(now);
        // Held across the publish: the user exists for others only once announced.
        self.events.publish(event).await?;
        users.insert(user_id.to_owned(), record.clone());
        Ok(Registration::Created(record))
    }

    async fn get(&self, user_id: &str) -> Result<Option<UserRecord>, ProducerError> {
        Ok(self.users.lock().await.get(user_id).cloned())
    }

    async fn update_profile(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<UserRecord, ProducerError> {
        let mut users = self.users.lock().await;
        let current = live(&users, user_id)?;
        let now = OffsetDateTime::now_utc();
        let record = UserRecord {
            version: current.version + 1,
            profile,
            updated_at: now,
            ..current.clone()
        };
        let event =
            UserProfileUpdated::from_profile(user_id, record.version, record.profile.clone())
                .occurred_at(now);
        event.validate()?;
        self.events.publish(event).await?;
        users.insert(user_id.to_owned(), record.clone());
        Ok(record)
    }

    async fn delete(&self, user_id: &str) -> Result<UserRecord, ProducerError> {
        let mut users = self.users.lock().await;
        let current = live(&users, user_id)?;
        let now = OffsetDateTime::now_utc();
        let record = UserRecord {
            user_id: user_id.to_owned(),
            version: current.version + 1,
            profile: Profile::default(),
            deleted_at: Some(now),
            updated_at: now,
        };
        let event = UserDeleted::new(user_id, record.version).occurred_at(now);
        event.validate()?;
        self.events.publish(event).await?;
        users.insert(user_id.to_owned(), record.clone());
        Ok(record)
    }
}

#[async_trait]
impl SnapshotSource for MemoryUserDirectory {
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage, SnapshotError> {
        use std::ops::Bound;
        let users = self.users.lock().await;
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        let limit = limit.max(1) as usize;
        let mut live = users
            .range((lower, Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| !r.is_deleted());
        let page: Vec<SnapshotUser> = live
            .by_ref()
            .take(limit)
            .map(UserRecord::snapshot)
            .collect();
        let next = match (page.last(), live.next()) {
            (Some(last), Some(_)) => Some(last.user_id.clone()),
            _ => None,
        };
        Ok(SnapshotPage::new(page, next))
    }
}
