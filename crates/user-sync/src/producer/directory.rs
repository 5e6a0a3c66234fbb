//! [`UserDirectory`]: where the user service keeps its users, and what its
//! methods return ([`UserRecord`], [`Registration`]).

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::error::ProducerError;
use crate::{error::InvalidEvent, events::Profile, snapshot::SnapshotUser};

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

    pub(super) fn snapshot(&self) -> SnapshotUser {
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

/// Refuses an empty (or blank) user id.
pub(super) fn check_id(user_id: &str) -> Result<(), ProducerError> {
    if user_id.trim().is_empty() {
        return Err(InvalidEvent::EmptyUserId.into());
    }
    Ok(())
}
