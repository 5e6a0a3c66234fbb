//! [`ProvisionLayer`]: the layer, and how it is configured.

use std::{fmt, sync::Arc};

use tessera_authn::{Claims, claims::ExtraClaims};
use tower_layer::Layer;

use super::{
    profile::{ProfileFn, profile_from_claims},
    service::Provision,
};
use crate::{events::Profile, producer::UserDirectory};

/// Provisions unknown users on their first authenticated request; see the [module docs](super).
///
/// `E` is the claims type of the [`Principal`](tessera_authn::Principal) it reads (the validator's).
pub struct ProvisionLayer<D, E = ExtraClaims> {
    directory: Arc<D>,
    known: moka::sync::Cache<String, ()>,
    profile: ProfileFn<E>,
}

impl<D, E> Clone for ProvisionLayer<D, E> {
    fn clone(&self) -> Self {
        Self {
            directory: Arc::clone(&self.directory),
            known: self.known.clone(),
            profile: Arc::clone(&self.profile),
        }
    }
}

impl<D: fmt::Debug, E> fmt::Debug for ProvisionLayer<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisionLayer")
            .field("directory", &self.directory)
            .field("known", &self.known.entry_count())
            .finish()
    }
}

impl<D: UserDirectory> ProvisionLayer<D> {
    /// A layer registering unknown users in `directory`, remembering up to 100,000 known subjects.
    pub fn new(directory: D) -> Self {
        Self::with_capacity(directory, 100_000)
    }

    /// Like [`new`](Self::new), remembering up to `capacity` known subjects.
    pub fn with_capacity(directory: D, capacity: u64) -> Self {
        Self {
            directory: Arc::new(directory),
            known: moka::sync::Cache::new(capacity),
            profile: Arc::new(profile_from_claims),
        }
    }
}

impl<D, E> ProvisionLayer<D, E> {
    /// Reads `Principal<C>` instead, for a validator with custom claims
    /// `C`, and builds new users' profiles with `profile`.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use tessera_event_bus::{EventPublisher, memory::MemoryBus};
    /// use tessera_user_sync::{events::Profile, producer::MemoryUserDirectory, provision::ProvisionLayer};
    ///
    /// #[derive(Debug, Clone, Deserialize)]
    /// struct MyClaims { nickname: String }
    ///
    /// let bus = MemoryBus::new();
    /// let users = MemoryUserDirectory::new(EventPublisher::new(std::sync::Arc::new(bus.publisher()), "/users"));
    /// let layer = ProvisionLayer::new(users).with_claims(|claims: &tessera_authn::Claims<MyClaims>| Profile {
    ///     display_name: claims.extra.nickname.clone(),
    ///     ..Profile::default()
    /// });
    /// ```
    pub fn with_claims<C>(
        self,
        profile: impl Fn(&Claims<C>) -> Profile + Send + Sync + 'static,
    ) -> ProvisionLayer<D, C> {
        ProvisionLayer {
            directory: self.directory,
            known: self.known,
            profile: Arc::new(profile),
        }
    }
}

impl<S, D, E> Layer<S> for ProvisionLayer<D, E> {
    type Service = Provision<S, D, E>;

    fn layer(&self, inner: S) -> Provision<S, D, E> {
        Provision::from_parts(
            inner,
            Arc::clone(&self.directory),
            self.known.clone(),
            Arc::clone(&self.profile),
        )
    }
}
