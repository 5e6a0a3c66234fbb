use axum::{Router, routing::get};
use tessera_authn::{AuthnLayer, ConfigError, Issuer, JwtValidator, Principal};
use tessera_authz::RequireScopes;

async fn me(principal: Principal) -> String {
    format!("hello {}", principal.subject().unwrap_or("?"))
}

/// `/me` for any valid token, `/admin` for tokens with scope `admin`, `/healthz` for anyone.
pub fn app(issuer: &str, audience: &str) -> Result<Router, ConfigError> {
    let validator = JwtValidator::builder()
        // keys from {issuer}/.well-known/openid-configuration, fetched on first use
        .issuer(Issuer::new(issuer).audience(audience).discovery())
        .build()?;
    let protected = Router::new()
        .route("/admin", get(|| async { "admin area" }))
        .route_layer(RequireScopes::all(["admin"])) // 403 without scope "admin"
        .route("/me", get(me))
        .layer(AuthnLayer::new(validator)); // 401 without a valid token
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(protected))
}

pub async fn serve(app: Router, bind: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    axum::serve(listener, app).await
}
