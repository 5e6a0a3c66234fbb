//! A GraphQL gateway over the user and comment services: the seed's
//! "give me comments with usernames" in one response.
//!
//! Run with `AUTHN_ISSUER=... AUTHN_AUDIENCE=... USER_SERVICE_URL=... COMMENT_SERVICE_URL=... cargo run -p gateway`.
//!
//! `POST /graphql` (any valid token) answers queries such as
//!
//! ```graphql
//! { comments(postId: "p1") { id text author { id displayName } } }
//! ```
//!
//! Comments come from the comment service (`GET /posts/{id}/comments`); the
//! authors' display names are resolved through the user service's batch
//! endpoint (`GET /users?ids=a,b,c`) by a per-request DataLoader, so a query
//! costs one user-service request however many comments it returns. The
//! caller's bearer token is relayed to both services.
//!
//! ```
//! use tessera_authn::{Issuer, JwtValidator, KeySet};
//!
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("gateway").keys(KeySet::default()))
//!     .build()
//!     .unwrap();
//! let downstream = gateway::Downstream::new(
//!     "http://127.0.0.1:3001".parse().unwrap(),
//!     "http://127.0.0.1:3002".parse().unwrap(),
//! );
//! let app: axum::Router = gateway::app(validator, downstream);
//! # let _ = app;
//! ```

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_authn::client::{TokenProvider, TokenRelay};
use tessera_authn::{AuthnLayer, ConfigError, Issuer, JwtValidator, Principal};
use tracing::Instrument as _;
use url::Url;

/// The most ids sent to the user service in one batch request.
const MAX_BATCH: usize = 100;

/// The two services behind the gateway, and the HTTP client that calls them.
#[derive(Debug, Clone)]
pub struct Downstream {
    client: reqwest::Client,
    users: Url,
    comments: Url,
}

impl Downstream {
    /// Calls the user service at `users` and the comment service at `comments`.
    #[must_use]
    pub fn new(users: Url, comments: Url) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            client,
            users,
            comments,
        }
    }
}

/// Why a downstream call failed. Shown to GraphQL clients as an error
/// message; never contains the token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DownstreamError {
    /// The request could not be sent or its answer read.
    #[error("{service} unreachable: {reason}")]
    Unreachable {
        /// Which service.
        service: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The service answered with an error status.
    #[error("{service} answered {status}")]
    Status {
        /// Which service.
        service: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The service's answer is not the expected JSON.
    #[error("{service} sent an unexpected body: {reason}")]
    Body {
        /// Which service.
        service: &'static str,
        /// The parse error.
        reason: String,
    },
    /// The caller's token cannot be relayed (it expired during the query).
    #[error("the caller's token cannot be relayed to {service}: {reason}")]
    Token {
        /// Which service.
        service: &'static str,
        /// Why.
        reason: String,
    },
}

/// One GraphQL request's view of the downstream services: the shared client
/// and the caller's token, relayed on every call.
struct Call {
    downstream: Downstream,
    /// The caller's validated token, never sent once expired.
    relay: TokenRelay,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("downstream", &self.downstream)
            .finish_non_exhaustive()
    }
}

impl Call {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        service: &'static str,
        url: Url,
    ) -> Result<T, DownstreamError> {
        let token = self
            .relay
            .token()
            .await
            .map_err(|e| DownstreamError::Token {
                service,
                reason: e.to_string(),
            })?;
        let span = telemetry::client_span("GET", url.as_str());
        let headers = span.in_scope(telemetry::trace_headers);
        let response = self
            .downstream
            .client
            .get(url)
            .headers(headers)
            .bearer_auth(token.secret())
            .send()
            .instrument(span)
            .await
            .map_err(|e| DownstreamError::Unreachable {
                service,
                reason: e.without_url().to_string(),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(DownstreamError::Status {
                service,
                status: status.as_u16(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| DownstreamError::Unreachable {
                service,
                reason: e.without_url().to_string(),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| DownstreamError::Body {
            service,
            reason: e.to_string(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RemoteComment {
    id: String,
    text: String,
    author: Option<RemoteAuthor>,
}

#[derive(Debug, Clone, Deserialize)]
struct RemoteAuthor {
    id: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RemoteUser {
    id: String,
    display_name: Option<String>,
}

/// A comment, as the gateway serves it.
#[derive(Debug, Clone)]
pub struct Comment {
    id: String,
    text: String,
    author_id: Option<String>,
}

/// A comment's author: a public profile.
#[derive(Debug, Clone, SimpleObject)]
pub struct User {
    /// The user id (the token `sub` of that user).
    id: ID,
    /// The display name; null when the user service does not know the user.
    display_name: Option<String>,
}

#[Object]
impl Comment {
    /// The comment id.
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }

    /// The text.
    async fn text(&self) -> &str {
        &self.text
    }

    /// The author, or null when the author deleted the account.
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = &self.author_id else {
            return Ok(None);
        };
        let loader = ctx.data::<DataLoader<UserLoader>>()?;
        let user = loader.load_one(id.clone()).await?;
        Ok(Some(user.unwrap_or_else(|| User {
            id: ID(id.clone()),
            display_name: None,
        })))
    }
}

/// The query root.
#[derive(Debug, Clone, Copy)]
pub struct Query;

#[Object]
impl Query {
    /// The comments of a post, with their authors.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
    ) -> async_graphql::Result<Vec<Comment>> {
        let call = ctx.data::<Arc<Call>>()?;
        let mut url = call.downstream.comments.clone();
        url.path_segments_mut()
            .map_err(|()| async_graphql::Error::new("comment service URL cannot be a base"))?
            .pop_if_empty()
            .extend(["posts", post_id.as_str(), "comments"]);
        let comments: Vec<RemoteComment> = call.get("comment service", url).await?;
        Ok(comments
            .into_iter()
            .map(|c| Comment {
                id: c.id,
                text: c.text,
                author_id: c.author.map(|a| a.id),
            })
            .collect())
    }
}

/// Loads public profiles from the user service's batch endpoint.
pub struct UserLoader {
    call: Arc<Call>,
}

impl fmt::Debug for UserLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLoader").finish_non_exhaustive()
    }
}

impl Loader<String> for UserLoader {
    type Value = User;
    type Error = Arc<DownstreamError>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, User>, Self::Error> {
        let mut url = self.call.downstream.users.clone();
        url.path_segments_mut()
            .map_err(|()| DownstreamError::Body {
                service: "user service",
                reason: "base URL cannot have a path".to_owned(),
            })?
            .pop_if_empty()
            .push("users");
        url.query_pairs_mut().append_pair("ids", &keys.join(","));
        let users: Vec<RemoteUser> = self.call.get("user service", url).await?;
        Ok(users
            .into_iter()
            .map(|u| {
                let user = User {
                    id: ID(u.id.clone()),
                    display_name: u.display_name,
                };
                (u.id, user)
            })
            .collect())
    }
}

/// The gateway's GraphQL schema.
pub type GatewaySchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema, with depth and complexity limits against abusive queries.
#[must_use]
pub fn schema() -> GatewaySchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .limit_depth(8)
        .limit_complexity(500)
        .finish()
}

#[derive(Clone)]
struct AppState {
    schema: GatewaySchema,
    downstream: Downstream,
}

/// The gateway's routes: `POST /graphql` behind `AuthnLayer`, `GET /healthz` open.
pub fn app(validator: JwtValidator, downstream: Downstream) -> Router {
    let state = AppState {
        schema: schema(),
        downstream,
    };
    Router::new()
        .route("/graphql", post(graphql))
        .layer(AuthnLayer::new(validator).realm("gateway"))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(telemetry::trace_requests))
        .with_state(state)
}

async fn graphql(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<async_graphql::Request>,
) -> Json<async_graphql::Response> {
    let call = Arc::new(Call {
        downstream: state.downstream.clone(),
        relay: TokenRelay::from_principal(&principal),
    });
    // One loader per GraphQL request: batches carry that caller's token,
    // and nothing is cached across callers. Its batches run in tasks of
    // their own, inside this request's span so their calls stay in its trace.
    let span = tracing::Span::current();
    let loader = DataLoader::new(
        UserLoader {
            call: Arc::clone(&call),
        },
        move |batch| tokio::spawn(batch.instrument(span.clone())),
    )
    .max_batch_size(MAX_BATCH);
    Json(state.schema.execute(request.data(call).data(loader)).await)
}

/// Configuration read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `AUTHN_ISSUER`.
    pub issuer: String,
    /// `AUTHN_AUDIENCE`.
    pub audience: String,
    /// `USER_SERVICE_URL`.
    pub user_service: Url,
    /// `COMMENT_SERVICE_URL`.
    pub comment_service: Url,
    /// `BIND` (default `127.0.0.1:4000`).
    pub bind: SocketAddr,
}

/// A configuration problem, reported before the server starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A required variable is missing or empty.
    #[error("{0} is not set; it is required (see examples/gateway)")]
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
        let required = |name: &'static str| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigProblem::Missing(name))
        };
        let url = |name: &'static str| -> Result<Url, ConfigProblem> {
            let raw = required(name)?;
            let url = Url::parse(&raw).map_err(|e| ConfigProblem::Invalid {
                name,
                reason: format!("{raw:?}: {e}"),
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigProblem::Invalid {
                    name,
                    reason: format!("{raw:?} is not an http(s) URL"),
                });
            }
            Ok(url)
        };
        url("AUTHN_ISSUER")?;
        // Kept exactly as given (not normalised by the URL parser): `iss` comparison is exact.
        let issuer = required("AUTHN_ISSUER")?.trim().to_owned();
        let bind = var("BIND")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "127.0.0.1:4000".to_owned());
        Ok(Self {
            issuer,
            audience: required("AUTHN_AUDIENCE")?,
            user_service: url("USER_SERVICE_URL")?,
            comment_service: url("COMMENT_SERVICE_URL")?,
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

    /// The downstream services.
    #[must_use]
    pub fn downstream(&self) -> Downstream {
        Downstream::new(self.user_service.clone(), self.comment_service.clone())
    }
}
