//! Run with `DEV_ISSUER_CLIENTS='[{"client_id":"svc","client_secret":"dev","scopes":["read"],"audience":"api"}]' cargo run -p dev-issuer`.
//!
//! Then: `curl -u svc:dev -d grant_type=client_credentials http://127.0.0.1:8080/token`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("dev-issuer", "info");
    let config = match dev_issuer::Config::from_lookup(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(problem) => {
            tracing::error!("configuration error: {problem}");
            return ExitCode::from(2);
        }
    };
    if config.clients.is_empty() {
        tracing::warn!("DEV_ISSUER_CLIENTS is empty: the token endpoint accepts no client");
    }
    let (clients, users) = (config.clients.len(), config.users.len());
    let issuer = match dev_issuer::start(config).await {
        Ok(issuer) => issuer,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        issuer = issuer.issuer(),
        addr = %issuer.addr(),
        clients,
        users,
        "dev-issuer listening (development only)"
    );
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
