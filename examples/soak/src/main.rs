//! Run with `cargo run --release -p soak -- --rate 500 --duration 30s --relays 3 --urls amqp://guest:guest@127.0.0.1:5672/%2f`
//! (`--help` for every flag; `--kill-every 1m` with `scripts/rabbitmq-cluster start` to kill nodes).

use std::{io::Write as _, process::ExitCode};

use soak::{Command, SoakConfig, USAGE};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let defaults = SoakConfig::from_env(|k| std::env::var(k).ok());
    let config = match defaults.parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            let _ = write!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = write!(std::io::stderr(), "soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let interrupted = async {
        // Without a signal handler there is nothing to wait for.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match soak::run_until(&config, interrupted).await {
        Ok(summary) => {
            let _ = writeln!(std::io::stdout(), "{summary}");
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "soak: {e}");
            ExitCode::FAILURE
        }
    }
}
