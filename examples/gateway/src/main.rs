//! Run with `AUTHN_ISSUER=... AUTHN_AUDIENCE=... USER_SERVICE_URL=... COMMENT_SERVICE_URL=... cargo run -p gateway`.

use gateway::{Config, app};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("gateway", "info");
    let config = match Config::from_lookup(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(problem) => {
            tracing::error!("configuration error: {problem}");
            return ExitCode::from(2);
        }
    };
    let validator = match config.validator() {
        Ok(v) => v,
        Err(problem) => {
            tracing::error!("configuration error: {problem}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, bind = %config.bind, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(bind = %config.bind, "gateway listening; POST /graphql");
    let server =
        axum::serve(listener, app(validator, config.downstream())).with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    match server.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::from(1)
        }
    }
}
