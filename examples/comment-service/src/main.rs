//! Run with `AUTHN_ISSUER=... AUTHN_AUDIENCE=... AMQP_URL=amqp://127.0.0.1:5672 cargo run -p comment-service`
//! (optional: `AMQP_EXCHANGE`, `AMQP_QUEUE_PREFIX`, `DATABASE_URL`, `DATABASE_SCHEMA`, `BIND`, and `USER_SERVICE_URL` with
//! `COMMENT_SERVICE_CLIENT_ID` / `COMMENT_SERVICE_CLIENT_SECRET` for a backfill at start).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use comment_service::{Broker, Config, Storage, app};
use tessera_event_bus::Subscriber;
use tessera_event_bus::nats::{NatsBus, NatsConfig};
use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};

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

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = telemetry::init("comment-service", "info");
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
    let storage = match &config.database_url {
        None => {
            tracing::info!("DATABASE_URL is not set: comments and the user replica live in memory");
            Storage::in_memory()
        }
        Some(url) => {
            let pool = match sqlx::PgPool::connect(url).await {
                Ok(pool) => pool,
                Err(error) => {
                    tracing::error!(%error, "cannot connect to DATABASE_URL");
                    return ExitCode::from(1);
                }
            };
            match Storage::postgres(pool, &config.database_schema).await {
                Ok(storage) => storage,
                Err(error) => {
                    tracing::error!(%error, "cannot prepare the database");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let (subscriber, bus): (Arc<dyn Subscriber>, Bus) = match &config.broker {
        Broker::Rabbitmq(url) => {
            let mut rabbit = RabbitConfig::new(url.clone()).connection_name("comment-service");
            if let Some(exchange) = &config.amqp_exchange {
                rabbit = rabbit.exchange(exchange);
            }
            if let Some(prefix) = &config.amqp_queue_prefix {
                rabbit = rabbit.queue_prefix(prefix);
            }
            match RabbitBus::connect(rabbit).await {
                Ok(bus) => (Arc::new(bus.subscriber()), Bus::Rabbitmq(bus)),
                Err(error) => {
                    tracing::error!(%error, "cannot connect to AMQP_URL");
                    return ExitCode::from(1);
                }
            }
        }
        Broker::Nats(url) => {
            match NatsBus::connect(NatsConfig::new(url.clone()).connection_name("comment-service"))
                .await
            {
                Ok(bus) => (Arc::new(bus.subscriber()), Bus::Nats(bus)),
                Err(error) => {
                    tracing::error!(%error, "cannot connect to NATS_URL");
                    return ExitCode::from(1);
                }
            }
        }
    };
    // The queue is bound before the backfill starts, so no live event is missed.
    let consumer = match storage.consumer(subscriber).start().await {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "cannot start consuming user events");
            return ExitCode::from(1);
        }
    };
    // A week of inbox records: far beyond any redelivery the broker does.
    let pruner = storage.spawn_inbox_pruner(
        Duration::from_secs(7 * 24 * 3600),
        Duration::from_secs(3600),
    );
    if let Some(client) = &config.backfill {
        match client.backfill(&config.issuer) {
            Ok(backfill) => {
                let storage = storage.clone();
                tokio::spawn(async move {
                    match storage.backfill(&backfill).await {
                        Ok(report) => tracing::info!(?report, "backfill done"),
                        Err(error) => {
                            tracing::warn!(%error, "backfill failed; live events still apply");
                        }
                    }
                });
            }
            Err(problem) => {
                tracing::error!("configuration error: {problem}");
                return ExitCode::from(2);
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, bind = %config.bind, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(bind = %config.bind, "comment-service listening");
    let served = axum::serve(listener, app(validator, storage))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    if let Err(error) = consumer.shutdown().await {
        tracing::warn!(%error, "event consumer did not stop cleanly");
    }
    if let Some(pruner) = pruner {
        pruner.shutdown().await;
    }
    bus.close().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::from(1)
        }
    }
}
