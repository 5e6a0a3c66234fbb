//! The user lifecycle events: [`UserRegistered`], [`UserProfileUpdated`], [`UserDeleted`].
//!
//! Their names and JSON fields are a contract with services in any language
//! (see `docs/user-events.md` and the JSON Schemas in
//! `crates/user-sync/schemas/`):
//!
//! | event | CloudEvents `type` |
//! | --- | --- |
//! | [`UserRegistered`] | `tessera.user.registered.v1` |
//! | [`UserProfileUpdated`] | `tessera.user.profile_updated.v1` |
//! | [`UserDeleted`] | `tessera.user.deleted.v1` |
//!
//! The CloudEvents `subject` is the user id. `version` grows strictly with
//! every change of a user, deletion included, so a consumer can order the
//! events of one user whatever order they arrive in. Registered and updated
//! events carry the **whole** profile after the change (an absent optional
//! field means the user has none), never a patch. Unknown extra fields are
//! accepted and ignored, so producers may add fields within a version.
//!
//! ```
//! use tessera_event_bus::{Envelope, Event, JsonCodec};
//! use tessera_user_sync::events::UserRegistered;
//! use time::macros::datetime;
//!
//! let event = UserRegistered::new("u1", 1, "Ada Lovelace")
//!     .username("ada")
//!     .occurred_at(datetime!(2026-11-28 12:00 UTC));
//! assert_eq!(UserRegistered::TYPE, "tessera.user.registered.v1");
//! assert_eq!(event.subject().as_deref(), Some("u1"));
//!
//! let json = serde_json::to_value(&event).unwrap();
//! assert_eq!(json, serde_json::json!({
//!     "user_id": "u1",
//!     "version": 1,
//!     "display_name": "Ada Lovelace",
//!     "username": "ada",
//!     "occurred_at": "2026-11-28T12:00:00Z",
//! }));
//!
//! // Unknown fields from a newer producer are accepted.
//! let raw = br#"{"user_id":"u1","version":2,"display_name":"Ada","occurred_at":"2026-11-28T12:00:00Z","pronouns":"she/her"}"#;
//! let newer: UserRegistered = serde_json::from_slice(raw).unwrap();
//! assert_eq!(newer.version, 2);
//! ```

use serde::{Deserialize, Serialize};
use tessera_event_bus::Event;
use time::OffsetDateTime;

use crate::error::InvalidEvent;

/// The largest version a producer may use: 2^53 − 1, the largest integer every
/// JSON implementation (JavaScript's included) represents exactly.
pub const MAX_VERSION: u64 = (1 << 53) - 1;

/// The profile fields carried by [`UserRegistered`] and [`UserProfileUpdated`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    /// The name to show for the user.
    pub display_name: String,
    /// The user's handle, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's email address, if any. Personal data: most consumers should not keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A URL of the user's picture, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// Where the JSON Schemas are published; each event's `dataschema` attribute points there.
pub const SCHEMA_BASE: &str =
    "https://github.com/tessera-rs/tessera/blob/main/crates/user-sync/schemas/";

/// What every user event has: `occurred_at`, `validate` and its [`Event`]
/// impl (type, schema, the user id as subject).
macro_rules! event_common {
    ($name:ident => $ty:literal, $schema:literal, $occurred_at_doc:literal) => {
        impl $name {
            #[doc = $occurred_at_doc]
            #[must_use]
            pub fn occurred_at(mut self, at: OffsetDateTime) -> Self {
                self.occurred_at = at;
                self
            }

            /// Checks what serde cannot: a non-empty user id and a version in `1..=MAX_VERSION`.
            pub fn validate(&self) -> Result<(), InvalidEvent> {
                validate_common(&self.user_id, self.version)
            }
        }

        impl Event for $name {
            const TYPE: &'static str = $ty;
            const DATASCHEMA: Option<&'static str> = Some(concat!(
                "https://github.com/tessera-rs/tessera/blob/main/crates/user-sync/schemas/",
                $schema
            ));
            fn subject(&self) -> Option<String> {
                Some(self.user_id.clone())
            }
        }
    };
}

macro_rules! profile_event {
    ($(#[$doc:meta])* $name:ident => $ty:literal, $schema:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[non_exhaustive]
        pub struct $name {
            /// The user's id (the identity provider's `sub`, usually); also the CloudEvents `subject`.
            pub user_id: String,
            /// The user's version after this change: strictly increasing per user, from 1.
            pub version: u64,
            /// The whole profile after the change.
            #[serde(flatten)]
            pub profile: Profile,
            /// When the change happened at the producer (RFC 3339 on the wire).
            #[serde(with = "time::serde::rfc3339")]
            pub occurred_at: OffsetDateTime,
        }

        impl $name {
            /// An event for `user_id` at `version` with a display name, no
            /// optional fields, occurring now.
            pub fn new(user_id: impl Into<String>, version: u64, display_name: impl Into<String>) -> Self {
                Self::from_profile(
                    user_id,
                    version,
                    Profile { display_name: display_name.into(), ..Profile::default() },
                )
            }

            /// An event carrying `profile`, occurring now.
            pub fn from_profile(user_id: impl Into<String>, version: u64, profile: Profile) -> Self {
                Self {
                    user_id: user_id.into(),
                    version,
                    profile,
                    occurred_at: OffsetDateTime::now_utc(),
                }
            }

            /// Sets the username.
            #[must_use]
            pub fn username(mut self, username: impl Into<String>) -> Self {
                self.profile.username = Some(username.into());
                self
            }

            /// Sets the email address.
            #[must_use]
            pub fn email(mut self, email: impl Into<String>) -> Self {
                self.profile.email = Some(email.into());
                self
            }

            /// Sets the avatar URL.
            #[must_use]
            pub fn avatar_url(mut self, url: impl Into<String>) -> Self {
                self.profile.avatar_url = Some(url.into());
                self
            }
        }

        event_common!($name => $ty, $schema, "Sets when the change happened.");
    };
}

profile_event! {
    /// A user now exists: the first event of every user (normally version 1).
    UserRegistered => "tessera.user.registered.v1", "user-registered.v1.json"
}

profile_event! {
    /// A user's profile changed; carries the whole profile after the change.
    UserProfileUpdated => "tessera.user.profile_updated.v1", "user-profile-updated.v1.json"
}

/// A user deleted the account. Deletion is final: consumers keep a tombstone
/// and ignore every later event of this user, whatever its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserDeleted {
    /// The user's id; also the CloudEvents `subject`.
    pub user_id: String,
    /// The user's version after the deletion (higher than any earlier one).
    pub version: u64,
    /// When the account was deleted at the producer (RFC 3339 on the wire).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl UserDeleted {
    /// A deletion of `user_id` at `version`, occurring now.
    pub fn new(user_id: impl Into<String>, version: u64) -> Self {
        Self {
            user_id: user_id.into(),
            version,
            occurred_at: OffsetDateTime::now_utc(),
        }
    }
}

event_common!(UserDeleted => "tessera.user.deleted.v1", "user-deleted.v1.json", "Sets when the deletion happened.");

/// What every event's `validate` checks: a non-empty user id and a version in `1..=MAX_VERSION`.
pub(crate) fn validate_common(user_id: &str, version: u64) -> Result<(), InvalidEvent> {
    if user_id.trim().is_empty() {
        return Err(InvalidEvent::EmptyUserId);
    }
    if version == 0 || version > MAX_VERSION {
        return Err(InvalidEvent::VersionOutOfRange(version));
    }
    Ok(())
}

/// Any of the three user events, for code that handles them alike.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserEvent {
    /// [`UserRegistered`].
    Registered(UserRegistered),
    /// [`UserProfileUpdated`].
    ProfileUpdated(UserProfileUpdated),
    /// [`UserDeleted`].
    Deleted(UserDeleted),
}

impl UserEvent {
    /// The user id.
    pub fn user_id(&self) -> &str {
        match self {
            Self::Registered(e) => &e.user_id,
            Self::ProfileUpdated(e) => &e.user_id,
            Self::Deleted(e) => &e.user_id,
        }
    }

    /// The user's version after this event.
    pub fn version(&self) -> u64 {
        match self {
            Self::Registered(e) => e.version,
            Self::ProfileUpdated(e) => e.version,
            Self::Deleted(e) => e.version,
        }
    }

    /// When the change happened at the producer.
    pub fn occurred_at(&self) -> OffsetDateTime {
        match self {
            Self::Registered(e) => e.occurred_at,
            Self::ProfileUpdated(e) => e.occurred_at,
            Self::Deleted(e) => e.occurred_at,
        }
    }

    /// The CloudEvents type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Registered(_) => UserRegistered::TYPE,
            Self::ProfileUpdated(_) => UserProfileUpdated::TYPE,
            Self::Deleted(_) => UserDeleted::TYPE,
        }
    }

    /// Checks the user id and the version.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        validate_common(self.user_id(), self.version())
    }
}

impl From<UserRegistered> for UserEvent {
    fn from(e: UserRegistered) -> Self {
        Self::Registered(e)
    }
}

impl From<UserProfileUpdated> for UserEvent {
    fn from(e: UserProfileUpdated) -> Self {
        Self::ProfileUpdated(e)
    }
}

impl From<UserDeleted> for UserEvent {
    fn from(e: UserDeleted) -> Self {
        Self::Deleted(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_the_documented_ones() {
        assert_eq!(UserRegistered::TYPE, "tessera.user.registered.v1");
        assert_eq!(UserProfileUpdated::TYPE, "tessera.user.profile_updated.v1");
        assert_eq!(UserDeleted::TYPE, "tessera.user.deleted.v1");
    }

    #[test]
    fn missing_required_fields_are_decode_errors() {
        for raw in [
            r#"{"version":1,"display_name":"A","occurred_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"user_id":"u","display_name":"A","occurred_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"user_id":"u","version":1,"occurred_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"user_id":"u","version":1,"display_name":"A"}"#,
            r#"{"user_id":"u","version":-1,"display_name":"A","occurred_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"user_id":"u","version":1,"display_name":"A","occurred_at":"yesterday"}"#,
            r#"{"user_id":7,"version":1,"display_name":"A","occurred_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"user_id":"u","version":1,"display_name":null,"occurred_at":"2026-01-01T00:00:00Z"}"#,
            "[]",
            "",
        ] {
            assert!(
                serde_json::from_str::<UserRegistered>(raw).is_err(),
                "{raw}"
            );
            assert!(
                serde_json::from_str::<UserProfileUpdated>(raw).is_err(),
                "{raw}"
            );
        }
        assert!(serde_json::from_str::<UserDeleted>(r#"{"user_id":"u","version":2}"#).is_err());
    }

    #[test]
    fn validate_rejects_empty_ids_and_versions_out_of_range() {
        assert_eq!(
            UserDeleted::new(" ", 1).validate(),
            Err(InvalidEvent::EmptyUserId)
        );
        assert_eq!(
            UserRegistered::new("u", 0, "A").validate(),
            Err(InvalidEvent::VersionOutOfRange(0))
        );
        assert_eq!(
            UserProfileUpdated::new("u", MAX_VERSION + 1, "A").validate(),
            Err(InvalidEvent::VersionOutOfRange(MAX_VERSION + 1))
        );
        assert_eq!(
            UserProfileUpdated::new("u", MAX_VERSION, "A").validate(),
            Ok(())
        );
    }

    #[test]
    fn optional_fields_accept_null_and_absence() {
        let raw = r#"{"user_id":"u","version":1,"display_name":"A","email":null,"occurred_at":"2026-01-01T00:00:00+02:00"}"#;
        let e: UserProfileUpdated = serde_json::from_str(raw).unwrap();
        assert_eq!(e.profile.email, None);
        assert_eq!(e.occurred_at.offset().whole_hours(), 2);
    }
}
