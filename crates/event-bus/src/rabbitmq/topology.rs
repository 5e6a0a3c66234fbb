//! Names and idempotent declarations of the exchange and each group's queues.

use lapin::{
    Channel, Connection,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

use super::{QueueType, RabbitConfig, amqp::short};
use crate::error::BusError;

/// The queues of one consumer group.
#[derive(Debug, Clone)]
pub(crate) struct GroupQueues {
    /// The group's queue, bound to the exchange by event type.
    pub(crate) queue: ShortString,
    /// The parking lot (dead letters) of the group.
    pub(crate) parking_lot: ShortString,
}

impl GroupQueues {
    /// The queues of `group` under `config`'s queue prefix.
    pub(crate) fn new(config: &RabbitConfig, group: &str) -> Result<Self, BusError> {
        let queue = format!("{}{group}", config.queue_prefix);
        Ok(Self {
            parking_lot: short(&parking_lot_name(&queue), "the parking-lot queue name")?,
            queue: short(&queue, "the group's queue name")?,
        })
    }

    /// The retry queue for a delay: messages wait there `delay_ms`, then go back to the group's queue.
    pub(crate) fn retry_queue(&self, delay_ms: u64) -> Result<ShortString, BusError> {
        short(
            &format!("{}.retry.{delay_ms}ms", self.queue),
            "the retry queue name",
        )
    }
}

/// The parking-lot queue of a group's queue.
fn parking_lot_name(queue: &str) -> String {
    format!("{queue}.parking-lot")
}

/// Rounds a retry delay up to two significant digits, so a jittered backoff
/// uses a handful of retry queues rather than one per millisecond.
pub(crate) fn retry_delay_ms(delay: std::time::Duration) -> u64 {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut scale = 1;
    while ms / scale >= 100 {
        scale *= 10;
    }
    ms.div_ceil(scale).saturating_mul(scale)
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn millis(d: std::time::Duration) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn err(e: lapin::Error) -> BusError {
    BusError::Connection(Box::new(e))
}

/// Declares the durable topic exchange.
pub(crate) async fn declare_exchange(
    connection: &Connection,
    config: &RabbitConfig,
) -> Result<(), BusError> {
    let channel = connection.create_channel().await.map_err(err)?;
    let result = channel
        .exchange_declare(
            short(&config.exchange, "the exchange name")?,
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                auto_delete: config.exchange_auto_delete,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(err);
    close(channel).await;
    result
}

async fn close(channel: Channel) {
    if channel.status().connected() {
        let _ = channel.close(200, ShortString::from("done")).await;
    }
}

/// Declares a group's queue (bound by each event type) and its parking lot.
///
/// Declaring is idempotent; a queue that exists with other arguments (say,
/// classic where quorum is configured) is an error from the broker.
pub(crate) async fn declare_group(
    connection: &Connection,
    config: &RabbitConfig,
    queues: &GroupQueues,
    event_types: &[String],
) -> Result<(), BusError> {
    let channel = connection.create_channel().await.map_err(err)?;
    let result = declare_group_on(&channel, config, queues, event_types).await;
    close(channel).await;
    result
}

fn queue_arguments(config: &RabbitConfig) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(expires) = config.queue_expires {
        args.insert("x-expires".into(), millis(expires));
    }
    args
}

async fn declare_group_on(
    channel: &Channel,
    config: &RabbitConfig,
    queues: &GroupQueues,
    event_types: &[String],
) -> Result<(), BusError> {
    let durable = QueueDeclareOptions::durable();
    channel
        .queue_declare(queues.parking_lot.clone(), durable, queue_arguments(config))
        .await
        .map_err(err)?;
    let mut args = queue_arguments(config);
    // Rejected messages, and on quorum queues those over the delivery limit, park.
    args.insert("x-dead-letter-exchange".into(), string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        string(queues.parking_lot.as_str()),
    );
    if let QueueType::Quorum { delivery_limit } = config.queue_type {
        args.insert("x-queue-type".into(), string("quorum"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(delivery_limit)),
        );
    }
    channel
        .queue_declare(queues.queue.clone(), durable, args)
        .await
        .map_err(err)?;
    let exchange = short(&config.exchange, "the exchange name")?;
    for ty in event_types {
        channel
            .queue_bind(
                queues.queue.clone(),
                exchange.clone(),
                short(ty, "the event type")?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Declares the retry queue for `delay_ms`: messages expire there and
/// dead-letter back to the group's queue.
pub(crate) async fn declare_retry_queue(
    connection: &Connection,
    config: &RabbitConfig,
    queues: &GroupQueues,
    delay_ms: u64,
) -> Result<ShortString, BusError> {
    let name = queues.retry_queue(delay_ms)?;
    let delay = std::time::Duration::from_millis(delay_ms);
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), millis(delay));
    // Redeclared on every retry, so an unused retry queue goes away a while
    // after its last message went back.
    let idle = config
        .queue_expires
        .unwrap_or(std::time::Duration::from_secs(3600));
    args.insert("x-expires".into(), millis(delay + idle));
    args.insert("x-dead-letter-exchange".into(), string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        string(queues.queue.as_str()),
    );
    let channel = connection.create_channel().await.map_err(err)?;
    let result = channel
        .queue_declare(name.clone(), QueueDeclareOptions::durable(), args)
        .await
        .map_err(err);
    close(channel).await;
    result.map(|_| name)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retry_delays_are_bucketed() {
        assert_eq!(retry_delay_ms(Duration::ZERO), 1);
        assert_eq!(retry_delay_ms(Duration::from_millis(99)), 99);
        assert_eq!(retry_delay_ms(Duration::from_millis(101)), 110);
        assert_eq!(retry_delay_ms(Duration::from_millis(1234)), 1300);
        assert_eq!(retry_delay_ms(Duration::from_secs(60)), 60_000);
    }

    #[test]
    fn names_follow_the_group() {
        let config = RabbitConfig::new("amqp://broker");
        let q = GroupQueues::new(&config, "comments").unwrap();
        assert_eq!(q.queue.as_str(), "comments");
        assert_eq!(q.parking_lot.as_str(), "comments.parking-lot");
        assert_eq!(
            q.retry_queue(1300).unwrap().as_str(),
            "comments.retry.1300ms"
        );
        assert!(GroupQueues::new(&config, &"g".repeat(300)).is_err());
    }

    #[test]
    fn a_queue_prefix_prefixes_every_queue_of_the_group() {
        let config = RabbitConfig::new("amqp://broker").queue_prefix("staging.");
        let q = GroupQueues::new(&config, "comments").unwrap();
        assert_eq!(q.queue.as_str(), "staging.comments");
        assert_eq!(q.parking_lot.as_str(), "staging.comments.parking-lot");
        assert_eq!(
            q.retry_queue(1300).unwrap().as_str(),
            "staging.comments.retry.1300ms"
        );
        // The prefix counts towards AMQP's 255-byte limit.
        let long = RabbitConfig::new("amqp://broker").queue_prefix("p".repeat(250));
        assert!(GroupQueues::new(&long, "comments").is_err());
        assert!(GroupQueues::new(&config.clone().queue_prefix(""), "comments").is_ok());
    }
}
