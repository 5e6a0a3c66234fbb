//! User lifecycle events and a local, eventually consistent user replica.
//!
//! This crate is being built: it will carry the `UserRegistered`,
//! `UserProfileUpdated` and `UserDeleted` events, producer helpers for the
//! service that owns users, and `UserReplica` for the services that keep a
//! local copy of the fields they need. Nothing is exported yet.
