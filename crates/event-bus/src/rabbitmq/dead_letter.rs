//! [`RabbitDeadLetters`]: a group's parking-lot queue as a [`DeadLetterQueue`].

use std::{collections::HashSet, fmt, sync::Arc, time::Instant};

use async_trait::async_trait;
use bytes::Bytes;
use lapin::{
    BasicProperties, Channel,
    message::BasicGetMessage,
    options::{BasicAckOptions, BasicGetOptions},
    types::{AMQPValue, FieldTable, ShortString},
};
use sha2::{Digest, Sha256};

use super::{
    amqp,
    connection::{Connector, connection_error},
    topology::GroupQueues,
};
use crate::{
    dead_letter::{DeadLetter, DeadLetterId, DeadLetterQueue, UnreadableMessage},
    error::BusError,
};

/// Headers a parked copy carries that a replayed message must not: the
/// reason, the broker's dead-lettering history and a quorum queue's
/// delivery count (which would count the parking lot's peeks as deliveries).
const PARKING_HEADERS: [&str; 8] = [
    amqp::REASON_HEADER,
    "x-delivery-count",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
];

/// The dead letters of one consumer group on RabbitMQ: the messages in the
/// group's parking-lot queue (`<group>.parking-lot`, under the configured
/// [queue prefix](crate::rabbitmq::RabbitConfig::queue_prefix)), from
/// [`RabbitBus::dead_letter_queue`](crate::rabbitmq::RabbitBus::dead_letter_queue).
///
/// - **Ids** are the event ids (`ce-id`); a message that is no valid event
///   has its AMQP `message-id`, or `sha256:<hex of its body>` without one.
///   Messages sharing an id (the same event parked twice) are replayed or
///   discarded together.
/// - **Listing** fetches the messages unacknowledged and hands them back, so
///   nothing moves; it reads the whole lot up to `limit`.
/// - **Replay** publishes a copy, confirmed, through the default exchange to
///   the group's own queue only (the other groups bound to the event type
///   handled it already), with the delivery count reset and the parking
///   headers removed, then acknowledges the parked message. A crash between
///   the two leaves both: replay is at least once, as everything here.
/// - **Discard** acknowledges the parked message.
#[derive(Clone)]
pub struct RabbitDeadLetters {
    connector: Arc<Connector>,
    group: Arc<str>,
}

impl fmt::Debug for RabbitDeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitDeadLetters")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// What to do with the parked messages a scan meets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Replay,
    Discard,
}

impl RabbitDeadLetters {
    pub(super) fn new(connector: Arc<Connector>, group: &str) -> Self {
        Self {
            connector,
            group: Arc::from(group),
        }
    }

    async fn channel(&self) -> Result<(GroupQueues, Channel), BusError> {
        let queues = GroupQueues::new(&self.connector.config, &self.group)?;
        let deadline = Instant::now() + self.connector.config.publish_timeout;
        let live = self.connector.get(Some(deadline)).await?;
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(connection_error)?;
        Ok((queues, channel))
    }

    /// Fetches the next parked message unacknowledged; `None` once the lot
    /// is empty (or has never been declared: a 404 closes the channel).
    async fn fetch(
        channel: &Channel,
        queue: &ShortString,
        fetched: usize,
    ) -> Result<Option<BasicGetMessage>, BusError> {
        match channel
            .basic_get(queue.clone(), BasicGetOptions { no_ack: false })
            .await
        {
            Ok(got) => Ok(got),
            Err(_) if fetched == 0 && !channel.status().connected() => Ok(None),
            Err(e) => Err(connection_error(e)),
        }
    }

    /// Goes through the whole lot, applying `action` to the messages whose id
    /// is in `ids`; every other message goes back when the channel closes.
    async fn apply(&self, ids: &[DeadLetterId], action: Action) -> Result<usize, BusError> {
        let wanted: HashSet<&DeadLetterId> = ids.iter().collect();
        if wanted.is_empty() {
            return Ok(0);
        }
        let (queues, channel) = self.channel().await?;
        let (mut fetched, mut done) = (0, 0);
        let result = async {
            while let Some(got) = Self::fetch(&channel, &queues.parking_lot, fetched).await? {
                fetched += 1;
                let d = got.delivery;
                let body = Bytes::from(d.data);
                let id = message_id(&d.properties, &body);
                if !wanted.contains(&id) {
                    continue;
                }
                if action == Action::Replay {
                    let props = replay_properties(&d.properties);
                    self.connector
                        .publish(&ShortString::from(""), &queues.queue, true, &body, &props)
                        .await?;
                }
                channel
                    .basic_ack(d.delivery_tag, BasicAckOptions::default())
                    .await
                    .map_err(connection_error)?;
                done += 1;
            }
            Ok::<_, BusError>(())
        }
        .await;
        // Closing the channel hands every message not acked back to the lot.
        let _ = channel.close(200, ShortString::from("dead letters")).await;
        result.map(|()| done)
    }
}

#[async_trait]
impl DeadLetterQueue for RabbitDeadLetters {
    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let (queues, channel) = self.channel().await?;
        let mut listed = Vec::new();
        let result = async {
            while listed.len() < limit {
                let Some(got) = Self::fetch(&channel, &queues.parking_lot, listed.len()).await?
                else {
                    break;
                };
                listed.push(dead_letter(
                    &got.delivery.properties,
                    Bytes::from(got.delivery.data),
                ));
            }
            Ok::<_, BusError>(())
        }
        .await;
        let _ = channel.close(200, ShortString::from("peeked")).await;
        result.map(|()| listed)
    }

    async fn replay(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        self.apply(ids, Action::Replay).await
    }

    async fn discard(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        self.apply(ids, Action::Discard).await
    }
}

/// A parked message as a [`DeadLetter`].
pub(super) fn dead_letter(properties: &BasicProperties, body: Bytes) -> DeadLetter {
    let reason = amqp::parked_reason(properties);
    let event = amqp::from_amqp(properties, body.clone());
    let id = match &event {
        Ok(event) => DeadLetterId::new(event.attributes.id.as_str()),
        Err(_) => unreadable_id(properties, &body),
    };
    let event = event.map_err(|error| UnreadableMessage::new(error, body));
    DeadLetter::new(id, event, reason, amqp::parked_deliveries(properties))
}

/// A parked message's id: its event id, else its AMQP message id, else a
/// digest of its body.
fn message_id(properties: &BasicProperties, body: &Bytes) -> DeadLetterId {
    match amqp::from_amqp(properties, body.clone()) {
        Ok(event) => DeadLetterId::new(event.attributes.id),
        Err(_) => unreadable_id(properties, body),
    }
}

fn unreadable_id(properties: &BasicProperties, body: &[u8]) -> DeadLetterId {
    if let Some(id) = properties.message_id() {
        return DeadLetterId::new(id.as_str());
    }
    let hex: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    DeadLetterId::new(format!("sha256:{hex}"))
}

/// The parked copy's properties without the parking headers, counting
/// deliveries from zero again.
fn replay_properties(properties: &BasicProperties) -> BasicProperties {
    let mut headers: FieldTable = properties.headers().clone().unwrap_or_default();
    let kept: Vec<_> = headers
        .inner()
        .iter()
        .filter(|(name, _)| !PARKING_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    headers = FieldTable::default();
    for (name, value) in kept {
        headers.insert(name, value);
    }
    headers.insert(amqp::DELIVERIES_HEADER.into(), AMQPValue::LongLongInt(0));
    properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(amqp::PERSISTENT)
}
