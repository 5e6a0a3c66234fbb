//! Names and idempotent declarations of the exchange and each group's queues.

use lapin::{
    Channel, Connection,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};

use super::{
    amqp::short,
    config::{QueueType, RabbitConfig},
};
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
/// classic where quorum is configured) is [`BusError::QueueMismatch`], except
/// a quorum parking lot as Tessera 0.1 declared it (see [`declare_parking_lot`]).
pub(crate) async fn declare_group(
    connection: &Connection,
    config: &RabbitConfig,
    queues: &GroupQueues,
    event_types: &[String],
) -> Result<(), BusError> {
    let channel = declare_parking_lot(connection, config, queues).await?;
    let result = declare_group_on(&channel, config, queues, event_types).await;
    close(channel).await;
    result
}

/// Declares the parking lot; returns the channel to go on with.
///
/// A quorum parking lot declared before its delivery limit was explicit
/// (Tessera 0.1) has no `x-delivery-limit`, and RabbitMQ refuses to declare
/// it with one. Rather than stop every quorum group at the upgrade, such a lot
/// is kept as it is, with a warning: declared again with exactly the
/// arguments it had, which succeeds only if nothing else differs (otherwise
/// that difference is the error). On RabbitMQ 4.0 to 4.2 its messages then
/// count returns against the broker's default limit of 20, as before: the
/// policy in docs/operations.md lifts it, or the lot can be recreated.
async fn declare_parking_lot(
    connection: &Connection,
    config: &RabbitConfig,
    queues: &GroupQueues,
) -> Result<Channel, BusError> {
    let channel = connection.create_channel().await.map_err(err)?;
    let mismatch =
        match declare_queue(&channel, &queues.parking_lot, parking_lot_arguments(config)).await {
            Ok(()) => return Ok(channel),
            Err(BusError::QueueMismatch { mismatch, .. })
                if matches!(config.queue_type, QueueType::Quorum { .. })
                    && is_missing_delivery_limit(&mismatch) =>
            {
                mismatch
            }
            Err(error) => {
                close(channel).await;
                return Err(error);
            }
        };
    // The broker closed the channel with the refusal.
    let channel = connection.create_channel().await.map_err(err)?;
    let earlier = parking_lot_arguments_without_limit(config);
    if let Err(error) = declare_queue(&channel, &queues.parking_lot, earlier).await {
        close(channel).await;
        return Err(error);
    }
    tracing::warn!(
        queue = %queues.parking_lot,
        %mismatch,
        "parking lot declared by an earlier Tessera without an explicit delivery limit; \
         kept as it is (on RabbitMQ 4.0 to 4.2 apply the parking-lot policy of \
         docs/operations.md, or recreate the lot)"
    );
    Ok(channel)
}

/// Whether the broker refused a declare because the existing queue has no
/// `x-delivery-limit` where one is configured.
fn is_missing_delivery_limit(mismatch: &str) -> bool {
    mismatch.starts_with("inequivalent arg 'x-delivery-limit'")
        && mismatch.ends_with("but current is none")
}

// The arguments of each queue of a group. Classic groups keep the arguments
// they always had; quorum groups make every queue a quorum queue and
// dead-letter at least once wherever a queue dead-letters (RabbitMQ 3.10+):
//
// | queue        | classic                               | quorum (adds)                                   |
// |--------------|---------------------------------------|-------------------------------------------------|
// | `<group>`    | DLX "" -> parking lot, [x-expires]    | x-queue-type, x-delivery-limit, at least once   |
// | parking lot  | [x-expires]                           | x-queue-type                                    |
// | retry        | TTL, DLX "" -> `<group>`, x-expires   | x-queue-type, at least once; no x-expires       |
// |              | (delay + idle, 1 h by default)        | unless the topology is temporary (and why)      |
//
// "At least once" is `x-dead-letter-strategy: at-least-once` together with
// `x-overflow: reject-publish` (without the latter the broker silently falls
// back to at-most-once): the broker keeps a dead-lettered message in the
// source queue until the target queue confirmed it, so a node loss between
// the two cannot drop it.

/// `x-queue-type: quorum` and, when `dead_letters`, at-least-once dead-lettering.
fn quorum(args: &mut FieldTable, dead_letters: bool) {
    args.insert("x-queue-type".into(), string("quorum"));
    if dead_letters {
        args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
        // Only takes effect with a length limit (none is set); at-least-once needs it.
        args.insert("x-overflow".into(), string("reject-publish"));
    }
}

/// `x-expires` for a temporary topology; none otherwise.
fn temporary(config: &RabbitConfig) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(expires) = config.queue_expires {
        args.insert("x-expires".into(), millis(expires));
    }
    args
}

/// The arguments of a group's own queue.
pub(crate) fn group_queue_arguments(config: &RabbitConfig, queues: &GroupQueues) -> FieldTable {
    let mut args = temporary(config);
    // Rejected messages, and on quorum queues those over the delivery limit, park.
    args.insert("x-dead-letter-exchange".into(), string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        string(queues.parking_lot.as_str()),
    );
    if let QueueType::Quorum { delivery_limit } = config.queue_type {
        quorum(&mut args, true);
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(delivery_limit)),
        );
    }
    args
}

/// The delivery limit of a quorum parking lot: as good as none, and read as
/// a number by every RabbitMQ version.
///
/// A parking lot dead-letters nowhere, so a message over its limit is
/// dropped. Without an explicit limit RabbitMQ 4.x applies its default of 20,
/// and 4.0 to 4.2 count every return, such as each time a listing hands the
/// lot's messages back; `-1` ("no limit" on 4.x) means "drop at the first
/// return" on 3.x. The largest 32-bit value means "never" on all of them.
pub(crate) const PARKING_LOT_DELIVERY_LIMIT: i64 = i32::MAX as i64;

/// The arguments of a group's parking lot as Tessera 0.1 declared them.
fn parking_lot_arguments_without_limit(config: &RabbitConfig) -> FieldTable {
    let mut args = temporary(config);
    if let QueueType::Quorum { .. } = config.queue_type {
        quorum(&mut args, false);
    }
    args
}

/// The arguments of a group's parking lot.
pub(crate) fn parking_lot_arguments(config: &RabbitConfig) -> FieldTable {
    let mut args = parking_lot_arguments_without_limit(config);
    if let QueueType::Quorum { .. } = config.queue_type {
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(PARKING_LOT_DELIVERY_LIMIT),
        );
    }
    args
}

/// The arguments of the retry queue for `delay_ms`: its messages expire after
/// the delay and dead-letter back to the group's queue.
pub(crate) fn retry_queue_arguments(
    config: &RabbitConfig,
    queues: &GroupQueues,
    delay_ms: u64,
) -> FieldTable {
    let delay = std::time::Duration::from_millis(delay_ms);
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), millis(delay));
    let idle = config.queue_expires;
    match config.queue_type {
        // Redeclared on every retry, so an unused classic retry queue goes
        // away a while after its last message went back.
        QueueType::Classic => {
            let idle = idle.unwrap_or(std::time::Duration::from_secs(3600));
            args.insert("x-expires".into(), millis(delay + idle));
        }
        // A quorum queue's expiry is not renewed by redeclaring nor by
        // publishing (a retry queue has no consumer to renew it): with
        // `x-expires` the broker would delete the queue `x-expires` after its
        // creation, messages still waiting in it included. So a quorum retry
        // queue stays (one per delay used) unless the whole topology is
        // temporary, whose groups live shorter than `idle` anyway.
        QueueType::Quorum { .. } => {
            if let Some(idle) = idle {
                args.insert("x-expires".into(), millis(delay + idle));
            }
        }
    }
    args.insert("x-dead-letter-exchange".into(), string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        string(queues.queue.as_str()),
    );
    if let QueueType::Quorum { .. } = config.queue_type {
        quorum(&mut args, true);
    }
    args
}

/// What the broker's refusal to declare `queue` means for the caller.
///
/// RabbitMQ answers `PRECONDITION_FAILED` (and closes the channel) when the
/// queue exists with other arguments ("inequivalent arg ..."), and also when
/// it does not accept an argument at all (an older broker: quorum queues
/// take message TTL and at-least-once dead-lettering from 3.10 on).
fn declare_error(queue: &str, error: lapin::Error) -> BusError {
    if let lapin::ErrorKind::ProtocolError(amqp) = error.kind()
        && *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    {
        let text = amqp.get_message().as_str();
        let text = text
            .strip_prefix("PRECONDITION_FAILED - ")
            .unwrap_or(text)
            .to_owned();
        if text.starts_with("inequivalent arg") {
            return BusError::QueueMismatch {
                queue: queue.to_owned(),
                mismatch: text,
            };
        }
        return BusError::Unsupported(format!(
            "the broker refused to declare queue `{queue}`: {text}"
        ));
    }
    err(error)
}

async fn declare_queue(
    channel: &Channel,
    queue: &ShortString,
    arguments: FieldTable,
) -> Result<(), BusError> {
    channel
        .queue_declare(queue.clone(), QueueDeclareOptions::durable(), arguments)
        .await
        .map(drop)
        .map_err(|e| declare_error(queue.as_str(), e))
}

async fn declare_group_on(
    channel: &Channel,
    config: &RabbitConfig,
    queues: &GroupQueues,
    event_types: &[String],
) -> Result<(), BusError> {
    declare_queue(
        channel,
        &queues.queue,
        group_queue_arguments(config, queues),
    )
    .await?;
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
    let args = retry_queue_arguments(config, queues, delay_ms);
    let channel = connection.create_channel().await.map_err(err)?;
    let result = declare_queue(&channel, &name, args).await;
    close(channel).await;
    result.map(|()| name)
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

    /// A table as `name=value` lines, sorted, for comparing whole tables.
    fn table(args: &FieldTable) -> Vec<String> {
        let mut lines: Vec<String> = args
            .inner()
            .iter()
            .map(|(k, v)| match v {
                AMQPValue::LongString(s) => {
                    format!("{}={}", k.as_str(), String::from_utf8_lossy(s.as_bytes()))
                }
                AMQPValue::LongLongInt(n) => format!("{}={n}", k.as_str()),
                other => panic!("unexpected value type for {}: {other:?}", k.as_str()),
            })
            .collect();
        lines.sort();
        lines
    }

    fn quorum(limit: u32) -> RabbitConfig {
        RabbitConfig::new("amqp://broker").queue_type(QueueType::Quorum {
            delivery_limit: limit,
        })
    }

    #[test]
    fn classic_groups_keep_the_arguments_they_always_had() {
        let config = RabbitConfig::new("amqp://broker");
        let q = GroupQueues::new(&config, "comments").unwrap();
        assert_eq!(
            table(&group_queue_arguments(&config, &q)),
            [
                "x-dead-letter-exchange=",
                "x-dead-letter-routing-key=comments.parking-lot"
            ]
        );
        assert!(table(&parking_lot_arguments(&config)).is_empty());
        assert_eq!(
            table(&retry_queue_arguments(&config, &q, 1300)),
            [
                "x-dead-letter-exchange=",
                "x-dead-letter-routing-key=comments",
                "x-expires=3601300",
                "x-message-ttl=1300",
            ]
        );
        // A temporary topology adds x-expires everywhere, the retry queue's idle time included.
        let temp = config.temporary_topology(Duration::from_secs(60));
        assert_eq!(
            table(&group_queue_arguments(&temp, &q)),
            [
                "x-dead-letter-exchange=",
                "x-dead-letter-routing-key=comments.parking-lot",
                "x-expires=60000",
            ]
        );
        assert_eq!(table(&parking_lot_arguments(&temp)), ["x-expires=60000"]);
        assert_eq!(
            table(&retry_queue_arguments(&temp, &q, 1300)),
            [
                "x-dead-letter-exchange=",
                "x-dead-letter-routing-key=comments",
                "x-expires=61300",
                "x-message-ttl=1300",
            ]
        );
    }

    #[test]
    fn every_queue_of_a_quorum_group_is_quorum_and_dead_letters_at_least_once() {
        let config = quorum(7).queue_prefix("staging.");
        let q = GroupQueues::new(&config, "comments").unwrap();
        assert_eq!(
            table(&group_queue_arguments(&config, &q)),
            [
                "x-dead-letter-exchange=",
                "x-dead-letter-routing-key=staging.comments.parking-lot",
                "x-dead-letter-strategy=at-least-once",
                "x-delivery-limit=7",
                "x-overflow=reject-publish",
                "x-queue-type=quorum",
            ]
        );
        // Nothing to dead-letter from, and a delivery limit that never drops (see parking_lot_arguments).
        assert_eq!(
            table(&parking_lot_arguments(&config)),
            ["x-delivery-limit=2147483647", "x-queue-type=quorum"]
        );
        // No x-expires: the broker would not renew it and would delete waiting messages.
        assert_eq!(
            table(&retry_queue_arguments(&config, &q, 250)),
            [
                "x-dead-letter-exchange=",
                "x-dead-letter-routing-key=staging.comments",
                "x-dead-letter-strategy=at-least-once",
                "x-message-ttl=250",
                "x-overflow=reject-publish",
                "x-queue-type=quorum",
            ]
        );
    }

    #[test]
    fn a_temporary_quorum_topology_expires_every_queue() {
        let config = quorum(3).temporary_topology(Duration::from_secs(60));
        let q = GroupQueues::new(&config, "g").unwrap();
        assert!(table(&group_queue_arguments(&config, &q)).contains(&"x-expires=60000".to_owned()));
        assert_eq!(
            table(&parking_lot_arguments(&config)),
            [
                "x-delivery-limit=2147483647",
                "x-expires=60000",
                "x-queue-type=quorum"
            ]
        );
        assert!(
            table(&retry_queue_arguments(&config, &q, 100)).contains(&"x-expires=60100".to_owned())
        );
    }

    fn precondition_failed(text: &str) -> lapin::Error {
        lapin::Error::from(lapin::ErrorKind::ProtocolError(
            lapin::protocol::AMQPError::new(
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED),
                text.into(),
            ),
        ))
    }

    #[test]
    fn an_inequivalent_queue_is_a_mismatch_naming_the_queue_and_the_argument() {
        let broker = "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'comments' \
                      in vhost '/': received the value 'quorum' of type 'longstr' but current is none";
        let error = declare_error("comments", precondition_failed(broker));
        let BusError::QueueMismatch { queue, mismatch } = &error else {
            panic!("expected a queue mismatch, got {error:?}");
        };
        assert_eq!(queue, "comments");
        assert!(
            mismatch.starts_with("inequivalent arg 'x-queue-type'"),
            "{mismatch}"
        );
        let text = error.to_string();
        assert!(text.starts_with("queue `comments` exists on the broker with other arguments than configured: inequivalent arg 'x-queue-type'"), "{text}");
        assert!(text.contains("received the value 'quorum'"), "{text}");
        assert!(text.contains("docs/operations.md"), "{text}");
    }

    #[test]
    fn only_a_missing_delivery_limit_counts_as_an_earlier_parking_lot() {
        let missing = "inequivalent arg 'x-delivery-limit' for queue 'g.parking-lot' in vhost '/': \
                       received the value '2147483647' of type 'signedint' but current is none";
        assert!(is_missing_delivery_limit(missing));
        let other = "inequivalent arg 'x-delivery-limit' for queue 'g.parking-lot' in vhost '/': \
                     received the value '2147483647' of type 'signedint' but current is the value '5' of type 'long'";
        assert!(!is_missing_delivery_limit(other));
        let ty = "inequivalent arg 'x-queue-type' for queue 'g.parking-lot' in vhost '/': \
                  received the value 'quorum' of type 'longstr' but current is none";
        assert!(!is_missing_delivery_limit(ty));
    }

    #[test]
    fn an_argument_the_broker_refuses_is_unsupported_and_other_errors_stay_connection_errors() {
        let broker = "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'g.retry.100ms' \
                      in vhost '/' of queue type rabbit_quorum_queue";
        let error = declare_error("g.retry.100ms", precondition_failed(broker));
        assert!(
            matches!(&error, BusError::Unsupported(m) if m.contains("`g.retry.100ms`") && m.contains("invalid arg 'x-message-ttl'")),
            "{error:?}"
        );
        let io = lapin::Error::from(std::io::Error::other("reset"));
        assert!(matches!(declare_error("g", io), BusError::Connection(_)));
    }
}
