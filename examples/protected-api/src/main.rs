//! Run with `AUTHN_ISSUER=https://idp.example AUTHN_AUDIENCE=api cargo run -p protected-api`.

use protected_api::{Config, app_with, traced};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = telemetry::init("protected-api", "info,tessera_authn=debug");
    let config = match Config::from_lookup(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(problem) => {
            tracing::error!("configuration error: {problem}");
            return ExitCode::from(2);
        }
    };
    let dpop = match config.dpop_options() {
        Ok(dpop) => dpop,
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
    if let Err(error) = validator.warm_up().await {
        // Not fatal: the validator retries on the first request.
        tracing::warn!(%error, "could not fetch the issuer's keys yet");
    }
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, bind = %config.bind, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        bind = %config.bind,
        issuer = %config.issuer,
        dpop = ?config.dpop,
        dpop_nonce = config.dpop_nonce,
        "protected-api listening"
    );
    let app = app_with(validator, dpop);
    // Request spans only when something exports them (see `traced`).
    let app = if telemetry.exports_traces() {
        traced(app)
    } else {
        app
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
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
