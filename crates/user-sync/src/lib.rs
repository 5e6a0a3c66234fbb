#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod events;
pub mod producer;
#[cfg(feature = "authn")]
pub mod provision;
pub mod replica;
pub mod snapshot;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{ApplyError, BackfillError, InvalidEvent, SnapshotError, StoreError};
pub use events::{Profile, UserDeleted, UserEvent, UserProfileUpdated, UserRegistered};
pub use replica::{ReplicaService, UserReplica, UserReplicaBuilder};
pub use store::{Fields, ReplicaStore, ReplicatedUser};

// docs/guides/user-sync.md, compiled as doctests so the guide stays true
// (with the features its examples use).
#[cfg(all(doctest, feature = "postgres", feature = "authn", feature = "http"))]
#[doc = include_str!("../../../docs/guides/user-sync.md")]
struct GuideUserSync;
