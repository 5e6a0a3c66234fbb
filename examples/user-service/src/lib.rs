//! The seed's user service: it owns user profiles, creates them just in time
//! from the first authenticated request, and tells other services about every
//! change with user events (`tessera.user.*.v1`).
//!
//! Run with `AUTHN_ISSUER=... AUTHN_AUDIENCE=... AMQP_URL=... cargo run -p user-service`
//! (add `DATABASE_URL` for PostgreSQL; without it profiles live in memory).
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /users/me` | any valid token | the caller's profile `{id, display_name, version, ...}`; created on the first request (`UserRegistered`) |
//! | `PATCH /users/me` | any valid token | `{"display_name": "..."}` (1 to 64 characters, no control characters; 422 otherwise), emits `UserProfileUpdated` |
//! | `DELETE /users/me` | any valid token | deletes the account (204), emits `UserDeleted` |
//! | `GET /users/{id}` | any valid token | a public profile `{id, display_name}` |
//! | `GET /users?ids=a,b,c` | any valid token | public profiles of those users (unknown ones left out), at most 100 ids |
//! | `GET /users?after=<cursor>&limit=<n>` | scope `users:snapshot` | the versioned snapshot for replica backfill |
//!
//! With PostgreSQL the row change and its event are written in one
//! transaction (the outbox) and an [`OutboxRelay`] publishes them; in memory
//! the event is published before the change becomes visible, and the change
//! is undone if the publish fails.
//!
//! ```
//! use std::sync::Arc;
//! use tessera_authn::{Issuer, JwtValidator, KeySet};
//! use tessera_event_bus::{EventPublisher, memory::MemoryBus};
//! use tessera_user_sync::producer::MemoryUserDirectory;
//!
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("user-service").keys(KeySet::default()))
//!     .build()
//!     .unwrap();
//! let bus = MemoryBus::new();
//! let users = MemoryUserDirectory::new(EventPublisher::new(Arc::new(bus.publisher()), "/user-service"));
//! let app: axum::Router = user_service::app(validator, user_service::Users::new(users));
//! # let _ = app;
//! ```
//!
//! [`OutboxRelay`]: tessera_event_bus::outbox::OutboxRelay

use async_trait::async_trait;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_authn::{AuthnLayer, ConfigError, Issuer, JwtValidator, Principal};
use tessera_authz::{ensure, policy};
use tessera_user_sync::error::SnapshotError;
use tessera_user_sync::events::Profile;
use tessera_user_sync::producer::{ProducerError, Registration, UserDirectory, UserRecord};
use tessera_user_sync::provision::ProvisionLayer;
use tessera_user_sync::snapshot::{SnapshotPage, SnapshotSource};

/// The scope a service token needs for the snapshot endpoint.
pub const SNAPSHOT_SCOPE: &str = "users:snapshot";
/// The most ids one batch request may name.
pub const MAX_BATCH_IDS: usize = 100;
/// The largest snapshot page.
pub const MAX_SNAPSHOT_LIMIT: u32 = 1000;

/// A user directory that can also page a snapshot: the in-memory one or the
/// PostgreSQL one of tessera-user-sync.
pub trait Directory: UserDirectory + SnapshotSource {}
impl<T: UserDirectory + SnapshotSource> Directory for T {}

/// The service's users, shared by the handlers and the provisioning layer.
#[derive(Clone)]
pub struct Users(Arc<dyn Directory>);

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Users").field(&self.0).finish()
    }
}

impl Users {
    /// Wraps a directory.
    pub fn new(directory: impl Directory) -> Self {
        Self(Arc::new(directory))
    }
}

#[async_trait]
impl UserDirectory for Users {
    async fn register(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<Registration, ProducerError> {
        self.0.register(user_id, profile).await
    }
    async fn get(&self, user_id: &str) -> Result<Option<UserRecord>, ProducerError> {
        self.0.get(user_id).await
    }
    async fn update_profile(
        &self,
        user_id: &str,
        profile: Profile,
    ) -> Result<UserRecord, ProducerError> {
        self.0.update_profile(user_id, profile).await
    }
    async fn delete(&self, user_id: &str) -> Result<UserRecord, ProducerError> {
        self.0.delete(user_id).await
    }
}

/// The routes, behind `AuthnLayer`; `/users/me` also behind just-in-time provisioning.
pub fn app(validator: JwtValidator, users: Users) -> Router {
    let me = Router::new()
        .route("/users/me", get(get_me).patch(patch_me).delete(delete_me))
        .layer(ProvisionLayer::new(users.clone()));
    let public = Router::new()
        .route("/users", get(list_users))
        .route("/users/{id}", get(get_user));
    Router::new()
        .merge(me)
        .merge(public)
        .layer(AuthnLayer::new(validator).realm("user-service"))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(telemetry::trace_requests))
        .with_state(users)
}

/// The caller's own profile.
#[derive(Debug, Serialize)]
struct MyProfile {
    id: String,
    display_name: String,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar_url: Option<String>,
}

impl From<UserRecord> for MyProfile {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.user_id,
            display_name: r.profile.display_name,
            version: r.version,
            username: r.profile.username,
            email: r.profile.email,
            avatar_url: r.profile.avatar_url,
        }
    }
}

/// What any authenticated caller may see of a user.
#[derive(Debug, Serialize)]
struct PublicProfile {
    id: String,
    display_name: String,
}

/// An error answer: RFC 9457 problem details.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<ProducerError> for Problem {
    fn from(error: ProducerError) -> Self {
        match error {
            ProducerError::NotFound(_) | ProducerError::Deleted(_) => {
                Problem::new(StatusCode::NOT_FOUND, "no such user")
            }
            ProducerError::Invalid(e) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "user directory failed");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the user directory is unavailable; retry later",
                )
            }
        }
    }
}

fn caller(principal: &Principal) -> Result<&str, Problem> {
    principal
        .subject()
        .ok_or_else(|| Problem::new(StatusCode::FORBIDDEN, "the token has no subject"))
}

async fn live_record(users: &Users, id: &str) -> Result<UserRecord, Problem> {
    match users.get(id).await? {
        Some(record) if !record.is_deleted() => Ok(record),
        _ => Err(Problem::new(StatusCode::NOT_FOUND, "no such user")),
    }
}

async fn get_me(
    State(users): State<Users>,
    principal: Principal,
) -> Result<Json<MyProfile>, Problem> {
    let record = live_record(&users, caller(&principal)?).await?;
    Ok(Json(record.into()))
}

#[derive(Debug, Deserialize)]
struct ProfilePatch {
    display_name: String,
}

/// 1 to 64 characters, not only whitespace, no control characters.
fn validate_display_name(name: &str) -> Result<(), Problem> {
    let count = name.chars().count();
    if count == 0 || count > 64 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("display_name must have 1 to 64 characters, not {count}"),
        ));
    }
    if name.trim().is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name must not be blank",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "display_name must not contain control characters",
        ));
    }
    Ok(())
}

async fn patch_me(
    State(users): State<Users>,
    principal: Principal,
    body: Result<Json<ProfilePatch>, JsonRejection>,
) -> Result<Json<MyProfile>, Problem> {
    let Json(patch) = body.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json")
        }
        JsonRejection::JsonDataError(e) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text())
        }
        other => Problem::new(StatusCode::BAD_REQUEST, other.body_text()),
    })?;
    validate_display_name(&patch.display_name)?;
    let id = caller(&principal)?;
    let mut profile = live_record(&users, id).await?.profile;
    profile.display_name = patch.display_name;
    let record = users.update_profile(id, profile).await?;
    Ok(Json(record.into()))
}

async fn delete_me(
    State(users): State<Users>,
    principal: Principal,
) -> Result<StatusCode, Problem> {
    let id = caller(&principal)?;
    live_record(&users, id).await?;
    users.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_user(
    State(users): State<Users>,
    Path(id): Path<String>,
) -> Result<Json<PublicProfile>, Problem> {
    let record = live_record(&users, &id).await?;
    Ok(Json(PublicProfile {
        id: record.user_id,
        display_name: record.profile.display_name,
    }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    ids: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_users(
    State(users): State<Users>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    if let Some(ids) = query.ids {
        if query.after.is_some() || query.limit.is_some() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "use either ids or after/limit",
            ));
        }
        return Ok(Json(batch(&users, &ids).await?).into_response());
    }
    // The snapshot: only for service tokens that may read every user.
    if let Err(forbidden) = ensure(&principal, policy::scopes_all([SNAPSHOT_SCOPE])) {
        return Ok(forbidden.into_response());
    }
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_SNAPSHOT_LIMIT {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_SNAPSHOT_LIMIT}"),
        ));
    }
    let page: SnapshotPage =
        users
            .0
            .page(query.after.as_deref(), limit)
            .await
            .map_err(|e: SnapshotError| {
                tracing::error!(error = %e, "snapshot page failed");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the user directory is unavailable; retry later",
                )
            })?;
    Ok(Json(page).into_response())
}

async fn batch(users: &Users, ids: &str) -> Result<Vec<PublicProfile>, Problem> {
    let mut wanted: Vec<&str> = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.len() > MAX_BATCH_IDS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_BATCH_IDS} ids per request"),
        ));
    }
    let mut found = Vec::with_capacity(wanted.len());
    for id in wanted {
        if let Some(record) = users.get(id).await?.filter(|r| !r.is_deleted()) {
            found.push(PublicProfile {
                id: record.user_id,
                display_name: record.profile.display_name,
            });
        }
    }
    Ok(found)
}

/// The broker user events go to, from `AMQP_URL` or `NATS_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// `AMQP_URL`: one `amqp://` / `amqps://` URL, or a comma-separated list
    /// of a cluster's nodes.
    Rabbitmq(String),
    /// `NATS_URL`: one `nats://` / `tls://` URL, or a comma-separated list of
    /// a cluster's servers.
    Nats(String),
}

impl Broker {
    /// `AMQP_URL` or `NATS_URL` as `get` finds them: exactly one.
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigProblem> {
        let all = |url: &str, schemes: &[&str]| {
            url.split(',')
                .map(str::trim)
                .all(|u| schemes.iter().any(|s| u.starts_with(s)))
        };
        match (get("AMQP_URL"), get("NATS_URL")) {
            (Some(_), Some(_)) => Err(ConfigProblem::Invalid {
                name: "NATS_URL",
                reason: "AMQP_URL is set too; set one broker, AMQP_URL or NATS_URL".to_owned(),
            }),
            (None, None) => Err(ConfigProblem::Missing("AMQP_URL (or NATS_URL)")),
            (Some(url), None) if all(&url, &["amqp://", "amqps://"]) => Ok(Self::Rabbitmq(url)),
            (Some(_), None) => Err(ConfigProblem::Invalid {
                name: "AMQP_URL",
                reason: "expected an amqp:// or amqps:// URL, or a comma-separated list of them"
                    .to_owned(),
            }),
            (None, Some(url)) if all(&url, &["nats://", "tls://"]) => Ok(Self::Nats(url)),
            (None, Some(_)) => Err(ConfigProblem::Invalid {
                name: "NATS_URL",
                reason: "expected a nats:// or tls:// URL, or a comma-separated list of them"
                    .to_owned(),
            }),
        }
    }
}

/// Configuration read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `AUTHN_ISSUER`.
    pub issuer: String,
    /// `AUTHN_AUDIENCE`.
    pub audience: String,
    /// `AMQP_URL` (RabbitMQ) or `NATS_URL` (NATS JetStream): where user
    /// events go; exactly one is required for the standalone process.
    pub broker: Broker,
    /// `DATABASE_URL`: optional; profiles in memory without it.
    pub database_url: Option<String>,
    /// `BIND` (default `127.0.0.1:3001`).
    pub bind: SocketAddr,
}

/// A configuration problem, reported before the server starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A required variable is missing or empty.
    #[error("{0} is not set; it is required (see examples/user-service)")]
    Missing(&'static str),
    /// A variable has an invalid value.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The validator could not be built.
    #[error(transparent)]
    Validator(#[from] ConfigError),
}

impl Config {
    /// Reads the configuration through `var` (normally `std::env::var`).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigProblem> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| get(name).ok_or(ConfigProblem::Missing(name));
        let issuer = required("AUTHN_ISSUER")?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ConfigProblem::Invalid {
                name: "AUTHN_ISSUER",
                reason: format!("{issuer:?} is not an http(s) URL"),
            });
        }
        let broker = Broker::from_lookup(get)?;
        let bind = get("BIND").unwrap_or_else(|| "127.0.0.1:3001".to_owned());
        Ok(Self {
            issuer,
            audience: required("AUTHN_AUDIENCE")?,
            broker,
            database_url: get("DATABASE_URL"),
            bind: bind.parse().map_err(|e| ConfigProblem::Invalid {
                name: "BIND",
                reason: format!("{bind:?}: {e}"),
            })?,
        })
    }

    /// The validator for incoming tokens (keys by OIDC discovery).
    pub fn validator(&self) -> Result<JwtValidator, ConfigProblem> {
        Ok(JwtValidator::builder()
            .issuer(
                Issuer::new(&self.issuer)
                    .audience(&self.audience)
                    .discovery(),
            )
            .build()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_validated() {
        assert!(validate_display_name("Ada").is_ok());
        assert!(validate_display_name(&"é".repeat(64)).is_ok());
        for bad in [
            "",
            "   ",
            "a\u{0}b",
            "tab\there",
            "new\nline",
            &"x".repeat(65),
        ] {
            assert_eq!(
                validate_display_name(bad).unwrap_err().status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn configuration_needs_amqp_and_issuer() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let ok = Config::from_lookup(lookup(&[
            ("AUTHN_ISSUER", "http://127.0.0.1:8080"),
            ("AUTHN_AUDIENCE", "user-service"),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ]))
        .unwrap();
        assert_eq!(ok.bind.to_string(), "127.0.0.1:3001");
        assert_eq!(ok.database_url, None);
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "http://x"),
                ("AUTHN_AUDIENCE", "a")
            ])),
            Err(ConfigProblem::Missing("AMQP_URL (or NATS_URL)"))
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "http://x"),
                ("AUTHN_AUDIENCE", "a"),
                ("AMQP_URL", "http://x")
            ])),
            Err(ConfigProblem::Invalid {
                name: "AMQP_URL",
                ..
            })
        ));
        // The nodes of a cluster, as a list; every entry must be an AMQP URL.
        let cluster = Config::from_lookup(lookup(&[
            ("AUTHN_ISSUER", "http://x"),
            ("AUTHN_AUDIENCE", "a"),
            (
                "AMQP_URL",
                "amqp://127.0.0.1:5681/%2f, amqp://127.0.0.1:5682/%2f",
            ),
        ]))
        .unwrap();
        assert!(matches!(&cluster.broker, Broker::Rabbitmq(url) if url.contains("5682")));
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "http://x"),
                ("AUTHN_AUDIENCE", "a"),
                ("AMQP_URL", "amqp://127.0.0.1:5681/%2f,http://x")
            ])),
            Err(ConfigProblem::Invalid {
                name: "AMQP_URL",
                ..
            })
        ));
        // NATS JetStream instead of RabbitMQ; one broker, not both.
        let nats = Config::from_lookup(lookup(&[
            ("AUTHN_ISSUER", "http://x"),
            ("AUTHN_AUDIENCE", "a"),
            ("NATS_URL", "nats://127.0.0.1:4222"),
        ]))
        .unwrap();
        assert_eq!(
            nats.broker,
            Broker::Nats("nats://127.0.0.1:4222".to_owned())
        );
        assert!(matches!(
            Config::from_lookup(lookup(&[
                ("AUTHN_ISSUER", "http://x"),
                ("AUTHN_AUDIENCE", "a"),
                ("NATS_URL", "amqp://127.0.0.1:5672/%2f")
            ])),
            Err(ConfigProblem::Invalid {
                name: "NATS_URL",
                ..
            })
        ));
        let both = Config::from_lookup(lookup(&[
            ("AUTHN_ISSUER", "http://x"),
            ("AUTHN_AUDIENCE", "a"),
            ("AMQP_URL", "amqp://127.0.0.1:5672/%2f"),
            ("NATS_URL", "nats://127.0.0.1:4222"),
        ]));
        assert!(
            matches!(&both, Err(ConfigProblem::Invalid { name: "NATS_URL", reason }) if reason.contains("one broker")),
            "{both:?}"
        );
    }
}
