//! The README's "publish and consume on RabbitMQ" snippet (src/snippet.rs),
//! built with exactly that case's features. Without a broker the run checks
//! what needs none (the event type, its envelope, the broker settings); with
//! `TESSERA_CONSUMERS_LIVE=1` it runs the snippet against `AMQP_URL`.

mod snippet;

use snippet::OrderPlaced;
use tessera_event_bus::rabbitmq::RabbitConfig;
use tessera_event_bus::{Envelope, Event};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tessera_event_bus::BoxError> {
    assert_eq!(OrderPlaced::TYPE, "com.example.order.placed.v1");
    let placed = OrderPlaced {
        order_id: "o-1".into(),
        total_cents: 4200,
    };
    let envelope = Envelope::new("/order-service", placed);
    assert_eq!(envelope.attributes().subject.as_deref(), Some("o-1"));
    let _config =
        RabbitConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f").connection_name("billing");

    if std::env::var_os("TESSERA_CONSUMERS_LIVE").is_some() {
        let url = std::env::var("AMQP_URL")?;
        snippet::run(&url).await?;
        println!("rabbitmq: ok (published and consumed on {url})");
    } else {
        println!("rabbitmq: ok (no broker: built and checked offline)");
    }
    Ok(())
}
