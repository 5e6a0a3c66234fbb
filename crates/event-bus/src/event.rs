//! The [`Event`] trait: a Rust type with a stable CloudEvents type name.
//!
//! Implement it in one line with the [`event!`](crate::event!) macro, or by
//! hand when the subject needs more than a field.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tessera_event_bus::Event;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct UserRegistered { user_id: u64, email: String }
//!
//! tessera_event_bus::event!(UserRegistered => "com.example.user.registered.v1", subject = user_id);
//!
//! let e = UserRegistered { user_id: 7, email: "a@example.com".into() };
//! assert_eq!(UserRegistered::TYPE, "com.example.user.registered.v1");
//! assert_eq!(e.subject().as_deref(), Some("7"));
//! ```

use serde::{Serialize, de::DeserializeOwned};

/// An event type: a serde payload with a stable type name.
///
/// The type name is the CloudEvents `type` attribute and the routing key, so
/// it must never change once events are on the wire: version it in the name
/// (`com.example.user.registered.v1`) and add a new type for a breaking change.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable type name, such as `com.example.user.registered.v1`.
    const TYPE: &'static str;

    /// The `dataschema` attribute written with every event of this type.
    const DATASCHEMA: Option<&'static str> = None;

    /// The `subject`: what this event is about (for example the user id).
    /// Backends that promise ordering order events per subject.
    fn subject(&self) -> Option<String> {
        None
    }
}

/// Implements [`Event`] in one line.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use tessera_event_bus::Event;
/// #[derive(Serialize, Deserialize)]
/// struct Ping;
/// #[derive(Serialize, Deserialize)]
/// struct UserDeleted { user_id: String }
///
/// // No subject:
/// tessera_event_bus::event!(Ping => "com.example.ping.v1");
/// // Subject from a field (anything with `Display`):
/// tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
///
/// assert_eq!(Ping.subject(), None);
/// assert_eq!(UserDeleted { user_id: "u1".into() }.subject().as_deref(), Some("u1"));
/// ```
#[macro_export]
macro_rules! event {
    ($ty:ty => $name:expr) => {
        impl $crate::Event for $ty {
            const TYPE: &'static str = $name;
        }
    };
    ($ty:ty => $name:expr, subject = $field:ident) => {
        impl $crate::Event for $ty {
            const TYPE: &'static str = $name;
            fn subject(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some(::std::string::ToString::to_string(&self.$field))
            }
        }
    };
}
