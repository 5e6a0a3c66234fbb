use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};
use tessera_event_bus::{BoxError, Envelope, EventContext, EventPublisher, HandlerError, Router};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub total_cents: u64,
}
tessera_event_bus::event!(OrderPlaced => "com.example.order.placed.v1", subject = order_id);

async fn invoice(env: Envelope<OrderPlaced>, _ctx: EventContext) -> Result<(), HandlerError> {
    let order = env.into_data();
    // ... write the invoice; Err(HandlerError::transient(e)) retries, permanent() dead-letters
    let _ = (order.order_id, order.total_cents);
    Ok(())
}

pub async fn run(amqp_url: &str) -> Result<(), BoxError> {
    let bus = RabbitBus::connect(RabbitConfig::new(amqp_url).connection_name("billing")).await?;

    // Consume: the group "billing" gets a durable queue bound to the handled event types.
    let router = Router::new(Arc::new(bus.subscriber()), "billing")
        .handle(invoice)
        .start()
        .await?;

    // Publish: Ok once the broker confirmed the event.
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/order-service");
    let placed = OrderPlaced {
        order_id: "o-1".into(),
        total_cents: 4200,
    };
    events.publish(placed).await?;

    // At shutdown: finish in-flight handlers, then close the connection.
    router.shutdown().await?;
    bus.close().await;
    Ok(())
}
