//! The comment service: comments on posts, with their authors' display names
//! read from a local user replica fed by user events, never by calling the
//! user service on a read.
//!
//! Run with `AUTHN_ISSUER=... AUTHN_AUDIENCE=... AMQP_URL=amqp://127.0.0.1:5672 cargo run -p comment-service`.
//!
//! Routes (all but `/healthz` need a valid bearer token):
//!
//! - `POST /posts/{post_id}/comments` with `{"text": "..."}`, scope
//!   `comments:write`: 201 with `{"id", "post_id", "text", "author": {"id", "display_name"}}`.
//! - `GET /posts/{post_id}/comments`: 200 with `[{"id", "text", "author": {"id", "display_name"}}]`,
//!   oldest first. `display_name` is `null` while the replica does not know
//!   the user; `author` is `null` once the author deleted the account.
//!   403 when the replica knows the caller's account as deleted (a token
//!   may outlive the account; its comments would escape anonymisation).
//! - `DELETE /comments/{id}`: 204 for its author, 403 for anyone else, 404 if missing.
//! - `GET /healthz`: 200, no token.
//!
//! Invalid input answers `application/problem+json` (RFC 9457): 422 for a
//! text that is empty, longer than [`MAX_TEXT_CHARS`] characters or holds
//! control characters (other than newline and tab); 400 for a body that is
//! not JSON, 415 without a JSON content type.
//!
//! # Environment (the binary)
//!
//! | variable | | meaning |
//! | --- | --- | --- |
//! | `AUTHN_ISSUER` | required | the OIDC issuer URL; keys by discovery |
//! | `AUTHN_AUDIENCE` | required | the audience tokens must name |
//! | `AMQP_URL` | required (or `NATS_URL`) | RabbitMQ, where user events arrive; a comma-separated list for the nodes of a cluster |
//! | `NATS_URL` | instead of `AMQP_URL` | NATS JetStream (`nats://`), the bus's default stream and subjects; not with `AMQP_URL` |
//! | `AMQP_EXCHANGE` | optional | the topic exchange (default `tessera.events`) |
//! | `AMQP_QUEUE_PREFIX` | optional | a prefix for the group's queue names (`<prefix>comment-service`, its parking lot and retry queues), so environments or test runs sharing a virtual host keep their own copy; none by default |
//! | `BIND` | optional | listen address, default `127.0.0.1:3002` |
//! | `DATABASE_URL` | optional | PostgreSQL; in-memory stores when absent |
//! | `DATABASE_SCHEMA` | optional | the schema of the tables `comments`, `user_replica`, `inbox` (default `comment_service`; created, migrations run at start) |
//! | `USER_SERVICE_URL` | optional | backfill the replica at start from `GET {url}/users` |
//! | `COMMENT_SERVICE_CLIENT_ID`, `COMMENT_SERVICE_CLIENT_SECRET` | with `USER_SERVICE_URL` | client credentials for the backfill token (scope `users:snapshot`, from the issuer's token endpoint) |
//! | `USER_SERVICE_AUDIENCE` | optional | the audience to request that token for |
//!
//! `AMQP_URL` (or `NATS_URL`) is required: as a process of its own, the service would
//! otherwise never receive a user event, every display name would stay
//! `null` and deleted users' comments would never be anonymised, silently.
//! A missing variable exits with status 2 and says which; an unreachable
//! broker or database exits with status 1. Logs go to stderr (`RUST_LOG`).
//! To run without a broker, embed the service in process on an in-memory
//! bus, as `cargo run -p demo` and the tests do (below).
//!
//! # Events
//!
//! Consumer group `comment-service` ([`GROUP`]) on the event bus, applying
//! `tessera.user.registered.v1`, `tessera.user.profile_updated.v1` and
//! `tessera.user.deleted.v1` to a [`UserReplica`](tessera_user_sync::UserReplica)
//! that keeps only display names (data minimisation: the email in the
//! events never reaches the store). Its `on_deleted` hook anonymises the
//! deleted user's comments; with PostgreSQL it runs in the same
//! transaction as the tombstone.
//!
//! Idempotency: with PostgreSQL, deliveries pass through the inbox of
//! `tessera_event_bus::inbox` (table `inbox`), so a redelivered event is
//! acked without being applied again. `PgReplicaStore` opens its own
//! transaction and takes no caller's, so the replica's change commits just
//! before the inbox record rather than in the same transaction; should the
//! process die between the two commits, the redelivery reaches the replica
//! and its version gate makes it a no-op (the `on_deleted` hook runs only
//! for a new tombstone). In memory there is no inbox: the version gate alone
//! makes redelivered, duplicate and stale events no-ops.
//!
//! # Backfill
//!
//! With `USER_SERVICE_URL`, the binary binds its queue first, then pages the
//! user service's snapshot into the replica in the background
//! ([`Storage::backfill`], [`BackfillClient::backfill`]); live events keep
//! applying meanwhile and the version gate resolves the overlap. A failed
//! backfill is logged and the service keeps running on live events.
//!
//! In process (as the demo and the tests do), on an in-memory bus:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use tessera_authn::{Issuer, JwtValidator, KeySet};
//! use tessera_event_bus::memory::MemoryBus;
//! use comment_service::{Storage, app};
//!
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("comments").keys(KeySet::default()))
//!     .build()
//!     .unwrap();
//! let bus = MemoryBus::new();
//! let storage = Storage::in_memory();
//! let consumer = storage.consumer(Arc::new(bus.subscriber())).start().await.unwrap();
//! let app: axum::Router = app(validator, storage);
//! # let _ = app;
//! consumer.shutdown().await.unwrap();
//! # });
//! ```

mod config;
mod store;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_authn::{AuthnLayer, JwtValidator, Principal};
use tessera_authz::policy::subject_is;
use tessera_authz::{Forbidden, RequireScopes, ensure};

pub use config::{BackfillClient, Broker, Config, ConfigProblem, SNAPSHOT_SCOPE};
pub use store::{Comment, GROUP, Storage, StorageError};

/// The longest comment text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The longest post id accepted, in characters.
pub const MAX_POST_ID_CHARS: usize = 128;
/// The scope needed to write comments.
pub const WRITE_SCOPE: &str = "comments:write";

/// The service's routes over `storage`, tokens checked by `validator`.
pub fn app(validator: JwtValidator, storage: Storage) -> Router {
    let protected = Router::new()
        .route(
            "/posts/{post_id}/comments",
            post(create)
                .route_layer(RequireScopes::all([WRITE_SCOPE]))
                .get(list),
        )
        .route("/comments/{id}", delete(remove))
        .layer(AuthnLayer::new(validator).realm("comment-service"));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(protected)
        .layer(axum::middleware::from_fn(telemetry::trace_requests))
        .with_state(storage)
}

/// A failed request, answered as `application/problem+json` (or the
/// authorization layer's own 403).
#[derive(Debug)]
enum ApiError {
    Problem { status: StatusCode, detail: String },
    Forbidden(Forbidden),
    Storage(StorageError),
}

impl ApiError {
    fn problem(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::Problem {
            status,
            detail: detail.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        Self::Forbidden(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            Self::Problem { status, detail } => (status, detail),
            Self::Forbidden(f) => return f.into_response(),
            Self::Storage(error) => {
                tracing::error!(%error, "storage failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable; try again".to_owned(),
                )
            }
        };
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
struct NewComment {
    text: String,
}

fn validate_text(text: &str) -> Result<(), ApiError> {
    let invalid = |detail: &str| Err(ApiError::problem(StatusCode::UNPROCESSABLE_ENTITY, detail));
    if text.trim().is_empty() {
        return invalid("text must not be empty");
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return invalid(&format!("text must be at most {MAX_TEXT_CHARS} characters"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return invalid("text must not contain control characters");
    }
    Ok(())
}

fn validate_post_id(post_id: &str) -> Result<(), ApiError> {
    if post_id.is_empty() || post_id.chars().count() > MAX_POST_ID_CHARS {
        return Err(ApiError::problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("post id must be 1 to {MAX_POST_ID_CHARS} characters"),
        ));
    }
    Ok(())
}

fn author_json(
    author_id: Option<&str>,
    names: &std::collections::HashMap<String, Option<String>>,
) -> Value {
    match author_id {
        None => Value::Null,
        Some(id) => json!({ "id": id, "display_name": names.get(id).cloned().flatten() }),
    }
}

async fn create(
    State(storage): State<Storage>,
    Path(post_id): Path<String>,
    principal: Principal,
    body: Result<Json<NewComment>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|r| {
        // axum's status: 415 without a JSON content type, 400 for bad JSON,
        // 422 for JSON of the wrong shape.
        ApiError::problem(r.status(), r.body_text())
    })?;
    validate_post_id(&post_id)?;
    validate_text(&body.text)?;
    let author = principal
        .subject()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Forbidden::new("the token has no subject"))?
        .to_owned();
    // A deleted account's token may still be valid for a while; its
    // comments would escape the anonymisation that already ran.
    if storage.is_deleted(&author).await? {
        return Err(Forbidden::new("the account was deleted").into());
    }
    let comment = Comment {
        id: uuid::Uuid::now_v7().to_string(),
        post_id,
        text: body.text,
        author_id: Some(author.clone()),
    };
    storage.insert(&comment).await?;
    let names = storage.display_names(vec![author.clone()]).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": comment.id,
            "post_id": comment.post_id,
            "text": comment.text,
            "author": author_json(Some(&author), &names),
        })),
    ))
}

async fn list(
    State(storage): State<Storage>,
    Path(post_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    validate_post_id(&post_id)?;
    let comments = storage.list(&post_id).await?;
    let mut ids: Vec<String> = comments
        .iter()
        .filter_map(|c| c.author_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    // One replica round trip for all authors: no call to the user service.
    let names = storage.display_names(ids).await?;
    Ok(Json(Value::Array(
        comments
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "text": c.text,
                    "author": author_json(c.author_id.as_deref(), &names),
                })
            })
            .collect(),
    )))
}

async fn remove(
    State(storage): State<Storage>,
    Path(id): Path<String>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    let Some(comment) = storage.get(&id).await? else {
        return Err(ApiError::problem(StatusCode::NOT_FOUND, "no such comment"));
    };
    // An anonymised comment has no author: nobody may delete it here.
    ensure(
        &principal,
        subject_is(comment.author_id.as_deref().unwrap_or_default()),
    )
    .map_err(|_| Forbidden::new("only the author may delete a comment"))?;
    if storage
        .delete(&id, principal.subject().unwrap_or_default())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        // Deleted or anonymised between the read and the delete.
        Err(ApiError::problem(StatusCode::NOT_FOUND, "no such comment"))
    }
}
