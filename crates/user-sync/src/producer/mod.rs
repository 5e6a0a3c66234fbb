//! The producer side: the user service changes a user and emits the matching event atomically.
//!
//! A [`UserDirectory`] owns the users. Every change bumps the user's version
//! and emits the event carrying it, together or not at all:
//!
//! - [`MemoryUserDirectory`]: in memory, publishing through an
//!   [`EventPublisher`]; a change whose publish fails is undone.
//! - [`PgUserDirectory`](crate::producer::postgres::PgUserDirectory)
//!   (feature `postgres`): the row change and the outbox row in one
//!   transaction; the `*_in` methods take the caller's transaction so the
//!   service can write more in it.
//!
//! Registration is idempotent (`INSERT ... ON CONFLICT DO NOTHING` on
//! PostgreSQL): however many concurrent first requests race, one creates the
//! user and emits `UserRegistered`, the others see [`Registration::Existing`].
//! Deletion clears the profile and keeps a tombstone row (user ids are never
//! reused, and just-in-time provisioning must not bring a deleted user
//! back), then emits `UserDeleted`. Both directories are also
//! [`SnapshotSource`]s, so serving
//! `GET /users?after=&limit=` is one call.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use tessera_event_bus::{EventPublisher, SubscribeOptions, Subscriber, memory::MemoryBus};
//! use tessera_user_sync::{Profile, producer::{MemoryUserDirectory, Registration, UserDirectory}};
//!
//! let bus = MemoryBus::new();
//! let mut comments = bus.subscriber()
//!     .subscribe(SubscribeOptions::new("comments").event_types(["tessera.user.registered.v1", "tessera.user.profile_updated.v1"]))
//!     .await
//!     .unwrap();
//! let users = MemoryUserDirectory::new(EventPublisher::new(Arc::new(bus.publisher()), "/user-service"));
//!
//! let profile = Profile { display_name: "Ada".into(), ..Profile::default() };
//! assert!(matches!(users.register("u1", profile.clone()).await.unwrap(), Registration::Created(_)));
//! assert!(matches!(users.register("u1", profile).await.unwrap(), Registration::Existing(_)));
//! let renamed = Profile { display_name: "Ada Lovelace".into(), ..Profile::default() };
//! assert_eq!(users.update_profile("u1", renamed).await.unwrap().version, 2);
//!
//! let first = comments.next().await.unwrap().unwrap();
//! assert_eq!(first.event().event_type(), "tessera.user.registered.v1");
//! first.ack().await.unwrap();
//! let second = comments.next().await.unwrap().unwrap();
//! assert_eq!(second.event().event_type(), "tessera.user.profile_updated.v1");
//! # });
//! ```

#[cfg(feature = "postgres")]
pub mod postgres;

use std::{collections::BTreeMap, fmt, sync::Arc};

use async_trait::async_trait;
use tessera_event_bus::{BoxError, BusError, EventPublisher};
use time::OffsetDateTime;

use crate::{
    error::{InvalidEvent, SnapshotError},
    events::{Profile, UserDeleted, UserProfileUpdated, UserRegistered},
    snapshot::{SnapshotPage, SnapshotSource, SnapshotUser},
};

/// A user as the user service holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRecord {
    /// The user id.
    pub user_id: String,
    /// The version of the last change (the version of the last event emitted).
    pub version: u64,
    /// The profile; cleared once deleted.
    pub profile: Profile,
    /// When the user was deleted, if so.
    pub deleted_at: Option<OffsetDateTime>,
    /// When the user last changed.
    pub updated_at: OffsetDateTime,
}

impl UserRecord {
    /// Whether the user was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    fn snapshot(&self) -> SnapshotUser {
        let mut user = SnapshotUser::new(&self.user_id, self.version, &self.profile.display_name);
        user.profile = self.profile.clone();
        user.updated_at = Some(self.updated_at);
        user
    }
}

/// What [`UserDirectory::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Registration {
    /// The user was created and `UserRegistered` emitted.
    Created(UserRecord),
    /// The user already existed (maybe deleted); nothing was emitted.
    Existing(UserRecord),
}

impl Registration {
    /// The user.
    pub fn record(&self) -> &UserRecord {
        match self {
            Self::Created(r) | Self::Existing(r) => r,
        }
    }
}

/// A change to a user could not be made; nothing was written nor emitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The user does not exist.
    #[error("user `{0}` does not exist")]
    NotFound(String),
    /// The user was deleted; deleted users do not change any more.
    #[error("user `{0}` is deleted")]
    Deleted(String),
    /// The user id or the resulting event is invalid.
    #[error("invalid user change: {0}")]
    Invalid(#[from] InvalidEvent),
    /// Publishing the event failed (in-memory directory); the change was undone.
    #[error("could not publish the user event: {0}")]
    Publish(#[from] BusError),
    /// The database or the outbox failed; the transaction was not committed.
    #[error("user directory database error: {0}")]
    Database(#[source] BoxError),
}

/// Where the user service keeps its users; every change emits its event atomically.
#[async_trait]
pub trait UserDirectory: Send + Sync + fmt::Debug + 'static {
    /// Creates the user at version 1 and emits `UserRegistered`, unless it exists.
    async fn register(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<Registration, ProducerError>;

    /// A user, deleted ones included.
    async fn get(&self, user_id: &str) -> Result<Option<UserRecord>, ProducerError>;

    /// Replaces the profile, bumps the version, emits `UserProfileUpdated`.
    async fn update_profile(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<UserRecord, ProducerError>;

    /// Clears the profile, keeps a tombstone, bumps the version, emits `UserDeleted`.
    async fn delete(&self, user_id: &str) -> Result<UserRecord, ProducerError>;
}

fn check_id(user_id: &str) -> Result<(), ProducerError> {
    if user_id.trim().is_empty() {
        return Err(InvalidEvent::EmptyUserId.into());
    }
    Ok(())
}

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
        let current = users
            .get(user_id)
            .ok_or_else(|| ProducerError::NotFound(user_id.to_owned()))?;
        if current.is_deleted() {
            return Err(ProducerError::Deleted(user_id.to_owned()));
        }
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
        let current = users
            .get(user_id)
            .ok_or_else(|| ProducerError::NotFound(user_id.to_owned()))?;
        if current.is_deleted() {
            return Err(ProducerError::Deleted(user_id.to_owned()));
        }
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
