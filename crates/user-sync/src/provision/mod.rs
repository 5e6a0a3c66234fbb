//! Just-in-time provisioning (feature `authn`): the first authenticated
//! request of an unknown user creates the profile from the token's claims.
//!
//! [`ProvisionLayer`] goes **inside** `tessera_authn::AuthnLayer`: it reads
//! the [`Principal`](tessera_authn::Principal) the authentication layer put into the request
//! extensions and, for a `sub` it has not seen yet, calls
//! [`UserDirectory::register`](crate::producer::UserDirectory::register), which creates the user and emits
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

mod future;
mod layer;
mod profile;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::ProvisionLayer;
pub use self::profile::profile_from_claims;
pub use self::service::Provision;
