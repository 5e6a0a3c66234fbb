//! [`SnapshotSource`]: where a replica reads all users from, page by page
//! ([`SnapshotPage`] of [`SnapshotUser`]s).

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    error::SnapshotError,
    events::{MAX_VERSION, Profile},
    store::{Change, ReplicatedUser},
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

    pub(super) fn into_change(self, fetched_at: OffsetDateTime) -> Result<Change, SnapshotError> {
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
