//! The producer side: the user service changes a user and emits the matching event atomically.
//!
//! A [`UserDirectory`] owns the users. Every change bumps the user's version
//! and emits the event carrying it, together or not at all:
//!
//! - [`MemoryUserDirectory`]: in memory, publishing through an
//!   [`EventPublisher`](tessera_event_bus::EventPublisher); a change whose publish fails is undone.
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
//! [`SnapshotSource`](crate::snapshot::SnapshotSource)s, so serving
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

mod directory;
mod error;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

pub use self::{
    directory::{Registration, UserDirectory, UserRecord},
    error::ProducerError,
    memory::MemoryUserDirectory,
};
