//! What a store keeps of a user: [`ReplicatedUser`] (live), [`DeletedUser`]
//! (a tombstone), and [`UserState`], either of them.

use time::OffsetDateTime;

use super::fields::Fields;

/// A live user as a replica keeps it: only the fields the replica declared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicatedUser {
    /// The user id.
    pub user_id: String,
    /// The version of the newest change applied.
    pub version: u64,
    /// The display name, if kept.
    pub display_name: Option<String>,
    /// The username, if kept and the user has one.
    pub username: Option<String>,
    /// The email address, if kept and the user has one.
    pub email: Option<String>,
    /// The avatar URL, if kept and the user has one.
    pub avatar_url: Option<String>,
    /// When the newest applied change happened at the producer.
    pub updated_at: OffsetDateTime,
}

impl ReplicatedUser {
    /// A user with no profile fields.
    pub fn new(user_id: impl Into<String>, version: u64, updated_at: OffsetDateTime) -> Self {
        Self {
            user_id: user_id.into(),
            version,
            display_name: None,
            username: None,
            email: None,
            avatar_url: None,
            updated_at,
        }
    }

    /// Sets the display name.
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Sets the username.
    #[must_use]
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the email address.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the avatar URL.
    #[must_use]
    pub fn with_avatar_url(mut self, url: impl Into<String>) -> Self {
        self.avatar_url = Some(url.into());
        self
    }

    /// Drops the fields not in `fields`.
    #[must_use]
    pub fn minimised(mut self, fields: Fields) -> Self {
        if !fields.contains(Fields::DISPLAY_NAME) {
            self.display_name = None;
        }
        if !fields.contains(Fields::USERNAME) {
            self.username = None;
        }
        if !fields.contains(Fields::EMAIL) {
            self.email = None;
        }
        if !fields.contains(Fields::AVATAR_URL) {
            self.avatar_url = None;
        }
        self
    }
}

/// A deleted user: what a tombstone records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeletedUser {
    /// The user id.
    pub user_id: String,
    /// The higher of the deletion's version and the version stored before it.
    pub version: u64,
    /// When the deletion happened at the producer (or when reconciliation found the user gone).
    pub deleted_at: OffsetDateTime,
}

impl DeletedUser {
    /// A deletion of `user_id` at `version`.
    pub fn new(user_id: impl Into<String>, version: u64, deleted_at: OffsetDateTime) -> Self {
        Self {
            user_id: user_id.into(),
            version,
            deleted_at,
        }
    }
}

/// What a replica knows of a user: live, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserState {
    /// The user exists.
    Live(ReplicatedUser),
    /// The user was deleted; nothing applies any more.
    Deleted(DeletedUser),
}

impl UserState {
    /// The stored version.
    pub fn version(&self) -> u64 {
        match self {
            Self::Live(u) => u.version,
            Self::Deleted(d) => d.version,
        }
    }
}
