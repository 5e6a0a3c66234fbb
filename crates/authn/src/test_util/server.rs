//! The test issuer's HTTP side: the state its handlers share, the routes,
//! and the discovery and JWKS endpoints.

use super::key::{TestKey, jwks_document};
use super::oauth;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// How the JWKS endpoint behaves.
#[derive(Debug, Clone, Default)]
pub(super) enum JwksMode {
    #[default]
    Normal,
    Failing(u16),
    Raw(Vec<u8>),
}

/// What the issuer's handle and its HTTP handlers share.
pub(super) struct IssuerState {
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) keys: Mutex<Vec<Arc<TestKey>>>,
    /// The key used for each algorithm by default: the newest one.
    pub(super) next_kid: AtomicU64,
    pub(super) jwks_mode: Mutex<JwksMode>,
    pub(super) cache_control: Mutex<Option<String>>,
    pub(super) discovery_issuer: Mutex<Option<String>>,
    pub(super) jwks_fetches: AtomicU64,
    pub(super) discovery_fetches: AtomicU64,
    pub(super) oauth: oauth::OAuthState,
}

/// Discovery, the JWKS, the token and introspection endpoints.
pub(super) fn routes(state: &Arc<IssuerState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks.json", get(jwks))
        .route("/token", axum::routing::post(oauth::token))
        .route("/introspect", axum::routing::post(oauth::introspect))
        .with_state(Arc::clone(state))
}

/// Locks shared state; a test that panicked holding it does not poison it.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::Relaxed);
    let announced = lock(&state.discovery_issuer)
        .clone()
        .unwrap_or_else(|| state.issuer.clone());
    let base = state.issuer.trim_end_matches('/');
    axum::Json(json!({
        "issuer": announced,
        "jwks_uri": format!("{base}/jwks.json"),
        "token_endpoint": format!("{base}/token"),
        "introspection_endpoint": format!("{base}/introspect"),
        "grant_types_supported": ["client_credentials", "password", oauth::TOKEN_EXCHANGE_GRANT],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
    }))
    .into_response()
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::Relaxed);
    let mode = lock(&state.jwks_mode).clone();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = lock(&state.cache_control).as_deref()
        && let Ok(v) = HeaderValue::from_str(cc)
    {
        headers.insert(header::CACHE_CONTROL, v);
    }
    match mode {
        JwksMode::Normal => {
            let doc = jwks_document(&lock(&state.keys));
            (headers, doc.to_string()).into_response()
        }
        JwksMode::Failing(status) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            .into_response(),
        JwksMode::Raw(body) => (headers, body).into_response(),
    }
}
