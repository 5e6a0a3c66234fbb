use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tessera_event_bus::outbox::{Outbox, OutboxRelay, OutboxRelayHandle};
use tessera_event_bus::rabbitmq::RabbitBus;
use tessera_event_bus::{BoxError, Envelope};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub total_cents: u64,
}
tessera_event_bus::event!(OrderPlaced => "com.example.order.placed.v1", subject = order_id);

/// Once per process, at start: the outbox table, and the relay publishing what commits.
pub async fn start_relay(
    pool: &PgPool,
    outbox: &Outbox,
    bus: &RabbitBus,
) -> Result<OutboxRelayHandle, BoxError> {
    outbox.migrate(pool).await?; // idempotent; or run crates/event-bus/migrations/ yourself
    let relay = OutboxRelay::new(outbox, pool.clone(), Arc::new(bus.publisher()));
    Ok(relay.start().await?) // at shutdown: handle.shutdown().await
}

/// In a request handler: the order row and its event commit together, or neither does.
pub async fn place_order(
    pool: &PgPool,
    outbox: &Outbox,
    order: OrderPlaced,
) -> Result<(), BoxError> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO orders (id, total_cents) VALUES ($1, $2)")
        .bind(&order.order_id)
        .bind(order.total_cents as i64)
        .execute(&mut *tx)
        .await?;
    outbox
        .enqueue(&mut tx, &Envelope::new("/order-service", order))
        .await?;
    tx.commit().await?;
    Ok(())
}
