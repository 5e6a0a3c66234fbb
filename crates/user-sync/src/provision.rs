//! Just-in-time provisioning (feature `authn`): the first authenticated
//! request of an unknown user creates the profile from the token's claims.
//!
//! [`ProvisionLayer`] goes **inside** `tessera_authn::AuthnLayer`: it reads
//! the [`Principal`] the authentication layer put into the request
//! extensions and, for a `sub` it has not seen yet, calls
//! [`UserDirectory::register`], which creates the user and emits
//! `UserRegistered` exactly once however many first requests race (the
//! directory's insert is idempotent; PostgreSQL uses
//! `INSERT ... ON CONFLICT DO NOTHING` with the outbox in the same
//! transaction). Known subjects are cached (bounded), so later requests cost
//! one cache lookup.
//!
//! The profile comes from the claims ([`profile_from_claims`]): display name
//! from `name`, else `preferred_username`, else `sub`; `username` from
//! `preferred_username`; `email` from `email`; `avatar_url` from `picture`.
//!
//! The layer reads `Principal<ExtraClaims>`, what a validator with the
//! default claims produces. Behind a validator with custom claims
//! (`JwtValidator::builder().claims::<MyClaims>()`), say which type and how to
//! build the profile with [`ProvisionLayer::with_claims`]; otherwise the
//! layer finds no principal of its type and provisions nobody.
//!
//! Requests without a principal (anonymous, in `AuthnLayer::optional` mode)
//! or without `sub` pass through untouched. Fail closed: when the directory
//! fails the request is answered `503 Service Unavailable` and not passed
//! on; a user who deleted the account gets `403 Forbidden` and is not
//! recreated.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{convert::Infallible, sync::Arc};
//! use http::{Request, Response, StatusCode};
//! use tessera_authn::{Claims, Principal};
//! use tessera_event_bus::{EventPublisher, SubscribeOptions, Subscriber, memory::MemoryBus};
//! use tessera_user_sync::{producer::{MemoryUserDirectory, UserDirectory}, provision::ProvisionLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let bus = MemoryBus::new();
//! let _comments = bus.subscriber().subscribe(SubscribeOptions::new("comments").event_type("tessera.user.registered.v1")).await.unwrap();
//! let users = MemoryUserDirectory::new(EventPublisher::new(Arc::new(bus.publisher()), "/user-service"));
//! let service = ServiceBuilder::new()
//!     .layer(ProvisionLayer::new(users.clone()))
//!     .service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! // What AuthnLayer puts into the extensions:
//! let claims: Claims = serde_json::from_value(serde_json::json!({
//!     "iss": "https://idp.example", "sub": "u1", "exp": 4102444800_i64, "name": "Ada Lovelace"
//! })).unwrap();
//! let mut req = Request::new(());
//! req.extensions_mut().insert(Principal::new("https://idp.example", claims, "token"));
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(users.get("u1").await.unwrap().unwrap().profile.display_name, "Ada Lovelace");
//! # });
//! ```

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode};
use tessera_authn::{Claims, Principal, claims::ExtraClaims};
use tessera_event_bus::router::BoxFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    events::Profile,
    producer::{Registration, UserDirectory},
};

/// The profile for a new user from its token's claims.
///
/// ```
/// use tessera_authn::Claims;
/// use tessera_user_sync::provision::profile_from_claims;
///
/// let claims: Claims = serde_json::from_value(serde_json::json!({
///     "iss": "https://idp.example", "sub": "u1", "exp": 4102444800_i64,
///     "preferred_username": "ada", "email": "ada@example.com"
/// })).unwrap();
/// let profile = profile_from_claims(&claims);
/// assert_eq!(profile.display_name, "ada");
/// assert_eq!(profile.username.as_deref(), Some("ada"));
/// assert_eq!(profile.email.as_deref(), Some("ada@example.com"));
/// ```
pub fn profile_from_claims(claims: &tessera_authn::Claims<ExtraClaims>) -> Profile {
    let text = |name: &str| {
        claims
            .extra
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let username = text("preferred_username");
    let display_name = text("name")
        .or_else(|| username.clone())
        .or_else(|| claims.sub.clone())
        .unwrap_or_default();
    Profile {
        display_name,
        username,
        email: text("email"),
        avatar_url: text("picture"),
    }
}

/// Builds a new user's profile from the token's claims.
type ProfileFn<E> = Arc<dyn Fn(&Claims<E>) -> Profile + Send + Sync>;

/// Provisions unknown users on their first authenticated request; see the [module docs](self).
///
/// `E` is the claims type of the [`Principal`] it reads (the validator's).
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
        Provision {
            inner,
            directory: Arc::clone(&self.directory),
            known: self.known.clone(),
            profile: Arc::clone(&self.profile),
        }
    }
}

/// The service made by [`ProvisionLayer`].
pub struct Provision<S, D, E = ExtraClaims> {
    inner: S,
    directory: Arc<D>,
    known: moka::sync::Cache<String, ()>,
    profile: ProfileFn<E>,
}

impl<S: Clone, D, E> Clone for Provision<S, D, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            directory: Arc::clone(&self.directory),
            known: self.known.clone(),
            profile: Arc::clone(&self.profile),
        }
    }
}

impl<S: fmt::Debug, D: fmt::Debug, E> fmt::Debug for Provision<S, D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provision")
            .field("inner", &self.inner)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl<S, D, E> Provision<S, D, E> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn status<B: Default>(status: StatusCode) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    res
}

impl<S, D, E, ReqB, ResB> Service<Request<ReqB>> for Provision<S, D, E>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    D: UserDirectory,
    E: Send + Sync + 'static,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // Call the instance that was driven to readiness; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let principal = req.extensions().get::<Principal<E>>().cloned();
        let Some((sub, principal)) = principal
            .and_then(|p| p.subject().map(str::to_owned).map(|sub| (sub, p)))
            .filter(|(sub, _)| !self.known.contains_key(sub))
        else {
            return Box::pin(inner.call(req));
        };
        let directory = Arc::clone(&self.directory);
        let known = self.known.clone();
        let profile = (self.profile)(principal.claims());
        Box::pin(async move {
            match directory.register(&sub, profile).await {
                Ok(Registration::Existing(record)) if record.is_deleted() => {
                    tracing::info!(user_id = %sub, "request from a deleted account refused");
                    Ok(status(StatusCode::FORBIDDEN))
                }
                Ok(registration) => {
                    if matches!(registration, Registration::Created(_)) {
                        tracing::info!(user_id = %sub, "user provisioned just in time");
                    }
                    known.insert(sub, ());
                    inner.call(req).await
                }
                Err(error) => {
                    tracing::warn!(user_id = %sub, %error, "just-in-time provisioning failed");
                    Ok(status(StatusCode::SERVICE_UNAVAILABLE))
                }
            }
        })
    }
}
