//! Run with `AUTHN_ISSUER=... AUTHN_AUDIENCE=... AMQP_URL=... cargo run -p user-service`
//! (optional `DATABASE_URL` for PostgreSQL with the transactional outbox).

use std::process::ExitCode;
use std::sync::Arc;
use tessera_event_bus::nats::{NatsBus, NatsConfig};
use tessera_event_bus::outbox::{Outbox, OutboxRelay, TableName};
use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};
use tessera_event_bus::{EventPublisher, Publisher};
use tessera_user_sync::producer::MemoryUserDirectory;
use tessera_user_sync::producer::postgres::PgUserDirectory;
use user_service::{Broker, Config, Users, app};

const SOURCE: &str = "/user-service";

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("user-service", "info");
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::from(2)
        }
    }
}

/// The connection to the broker, closed at the end.
enum Bus {
    Rabbitmq(RabbitBus),
    Nats(NatsBus),
}

impl Bus {
    async fn close(&self) {
        match self {
            Self::Rabbitmq(bus) => bus.close().await,
            Self::Nats(bus) => bus.close().await,
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_lookup(|k| std::env::var(k).ok())
        .map_err(|e| format!("configuration error: {e}"))?;
    let validator = config
        .validator()
        .map_err(|e| format!("configuration error: {e}"))?;
    let (publisher, bus): (Arc<dyn Publisher>, Bus) = match &config.broker {
        Broker::Rabbitmq(url) => {
            let bus = RabbitBus::connect(RabbitConfig::new(url).connection_name("user-service"))
                .await
                .map_err(|e| format!("cannot connect to RabbitMQ: {e}"))?;
            (Arc::new(bus.publisher()), Bus::Rabbitmq(bus))
        }
        Broker::Nats(url) => {
            let bus = NatsBus::connect(NatsConfig::new(url).connection_name("user-service"))
                .await
                .map_err(|e| format!("cannot connect to NATS: {e}"))?;
            (Arc::new(bus.publisher()), Bus::Nats(bus))
        }
    };

    let mut relay = None;
    let users = match &config.database_url {
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
            let outbox =
                Outbox::new(TableName::new("user_service", "outbox").map_err(|e| e.to_string())?);
            outbox
                .migrate(&pool)
                .await
                .map_err(|e| format!("outbox migration failed: {e}"))?;
            let directory = PgUserDirectory::new(
                pool.clone(),
                TableName::new("user_service", "users").map_err(|e| e.to_string())?,
                outbox.clone(),
                SOURCE,
            );
            directory
                .migrate()
                .await
                .map_err(|e| format!("users migration failed: {e}"))?;
            relay = Some(
                OutboxRelay::new(&outbox, pool, Arc::clone(&publisher))
                    .start()
                    .await
                    .map_err(|e| format!("cannot start the outbox relay: {e}"))?,
            );
            tracing::info!("profiles in PostgreSQL; events through the outbox");
            Users::new(directory)
        }
        None => {
            tracing::info!("profiles in memory (set DATABASE_URL for PostgreSQL)");
            Users::new(MemoryUserDirectory::new(EventPublisher::new(
                publisher, SOURCE,
            )))
        }
    };

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    tracing::info!(bind = %config.bind, "user-service listening");
    axum::serve(listener, app(validator, users))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    if let Some(relay) = relay {
        let _ = relay.shutdown().await;
    }
    bus.close().await;
    Ok(())
}
