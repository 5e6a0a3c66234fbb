//! The README's "outbox on PostgreSQL" snippet (src/snippet.rs), built with
//! exactly that case's features. Without a database the run checks what
//! needs none (the outbox's table and migration, a lazy pool); with
//! `TESSERA_CONSUMERS_LIVE=1` it runs the snippet against `DATABASE_URL` and
//! `AMQP_URL`.

mod snippet;

use sqlx::postgres::PgPoolOptions;
use tessera_event_bus::BoxError;
use tessera_event_bus::outbox::{Outbox, TableName};
use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let outbox = Outbox::default();
    assert!(outbox.migration_sql().contains("tessera"));
    let custom = Outbox::new(TableName::new("orders_service", "outbox")?);
    assert!(custom.migration_sql().contains("orders_service"));
    // connect_lazy opens no connection until the pool is used.
    let _pool = PgPoolOptions::new().connect_lazy("postgres://postgres@127.0.0.1:5432/test")?;

    if std::env::var_os("TESSERA_CONSUMERS_LIVE").is_some() {
        let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
        let outbox = Outbox::new(TableName::new("tessera_consumer", "outbox")?);
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, total_cents bigint NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let bus = RabbitBus::connect(RabbitConfig::new(std::env::var("AMQP_URL")?)).await?;
        let relay = snippet::start_relay(&pool, &outbox, &bus).await?;
        let order_id = format!("consumer-{}", unique_suffix());
        let order = snippet::OrderPlaced {
            order_id,
            total_cents: 4200,
        };
        snippet::place_order(&pool, &outbox, order).await?;
        relay.shutdown().await?;
        bus.close().await;
        println!("outbox: ok (enqueued on PostgreSQL, relay started on RabbitMQ)");
    } else {
        println!("outbox: ok (no database: built and checked offline)");
    }
    Ok(())
}

fn unique_suffix() -> u128 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_nanos()).unwrap_or_default()
}
