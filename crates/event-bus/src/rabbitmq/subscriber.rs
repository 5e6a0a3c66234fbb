//! [`RabbitSubscriber`]: one queue per consumer group, manual acks, prefetch,
//! settlement through retry queues and the parking lot, and consumers that
//! resume after the connection drops.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Consumer,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tokio::sync::watch;

use super::{
    amqp,
    connection::Connector,
    topology::{self, GroupQueues},
};
use crate::{
    Acker, Delivery, Health, Settlement, SubscribeOptions, Subscriber, Subscription,
    error::BusError,
};

fn lapin_error(e: lapin::Error) -> BusError {
    BusError::Connection(Box::new(e))
}

/// The [`Subscriber`] of a [`RabbitBus`](super::RabbitBus).
///
/// Each subscription has its own channel with manual acks and the options'
/// prefetch. When the connection drops, subscriptions reconnect with backoff,
/// re-declare their queues and consume again; unsettled deliveries of the
/// old channel are redelivered by the broker.
#[derive(Debug)]
pub struct RabbitSubscriber {
    connector: Arc<Connector>,
    closing: watch::Sender<bool>,
}

impl RabbitSubscriber {
    pub(crate) fn new(connector: Arc<Connector>) -> Self {
        Self {
            connector,
            closing: watch::channel(false).0,
        }
    }

    fn is_closed(&self) -> bool {
        *self.closing.borrow() || self.connector.is_closed()
    }
}

#[async_trait]
impl Subscriber for RabbitSubscriber {
    async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        options.validate()?;
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        let queues = GroupQueues::new(&options.group)?;
        let mut subscription = RabbitSubscription {
            connector: Arc::clone(&self.connector),
            context: Arc::new(SettleContext {
                connector: Arc::clone(&self.connector),
                queues,
            }),
            options,
            closing: self.closing.subscribe(),
            closed: false,
            open: None,
        };
        // Declared and consuming before this returns: later events reach the group.
        let deadline = Instant::now() + self.connector.config.publish_timeout;
        subscription.open = Some(subscription.open_once(Some(deadline)).await?);
        Ok(Box::new(subscription))
    }

    async fn close(&self) -> Result<(), BusError> {
        self.closing.send_replace(true);
        Ok(())
    }

    fn health(&self) -> Health {
        if *self.closing.borrow() {
            Health::down("subscriber closed")
        } else {
            self.connector.health()
        }
    }
}

/// What settling needs besides the delivery: where retries and dead letters go.
#[derive(Debug)]
struct SettleContext {
    connector: Arc<Connector>,
    queues: GroupQueues,
}

struct Open {
    channel: Channel,
    consumer: Consumer,
}

/// One member of a consumer group on RabbitMQ.
struct RabbitSubscription {
    connector: Arc<Connector>,
    context: Arc<SettleContext>,
    options: SubscribeOptions,
    closing: watch::Receiver<bool>,
    closed: bool,
    open: Option<Open>,
}

impl fmt::Debug for RabbitSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitSubscription")
            .field("group", &self.options.group)
            .field("closed", &self.closed)
            .field("consuming", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

impl RabbitSubscription {
    fn is_closed(&self) -> bool {
        self.closed || *self.closing.borrow() || self.connector.is_closed()
    }

    /// Declares the group's queues and starts consuming, once.
    async fn open_once(&self, deadline: Option<Instant>) -> Result<Open, BusError> {
        let live = self.connector.get(deadline).await?;
        let config = &self.connector.config;
        topology::declare_group(
            &live.connection,
            config,
            &self.context.queues,
            &self.options.event_types,
        )
        .await?;
        let channel = live
            .connection
            .create_channel()
            .await
            .map_err(lapin_error)?;
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(lapin_error)?;
        let consumer = channel
            .basic_consume(
                self.context.queues.queue.clone(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lapin_error)?;
        Ok(Open { channel, consumer })
    }

    /// Opens the consumer, retrying with backoff while the broker is away.
    async fn reopen(&mut self) -> Result<(), BusError> {
        let config = &self.connector.config;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(config.reconnect_min_delay)
            .with_max_delay(config.reconnect_max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            if self.is_closed() {
                return Err(BusError::Closed);
            }
            match self.open_once(None).await {
                Ok(open) => {
                    tracing::info!(group = %self.options.group, "consuming again");
                    self.open = Some(open);
                    return Ok(());
                }
                Err(BusError::Closed) => return Err(BusError::Closed),
                Err(error) => {
                    let delay = delays.next().unwrap_or(config.reconnect_max_delay);
                    tracing::warn!(group = %self.options.group, %error, ?delay, "could not consume; retrying");
                    let mut closing = self.closing.clone();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = closing.wait_for(|c| *c) => {}
                    }
                }
            }
        }
    }

    /// Turns a broker delivery into a [`Delivery`]; parks what is not a valid CloudEvent.
    async fn accept(&self, d: lapin::message::Delivery) -> Option<Delivery> {
        let lapin::message::Delivery {
            routing_key,
            redelivered,
            properties,
            data,
            acker,
            ..
        } = d;
        let body = Bytes::from(data);
        match amqp::from_amqp(&properties, body.clone()) {
            Ok(event) => {
                let attempt = amqp::attempt(&properties, redelivered);
                let acker = RabbitAcker {
                    acker,
                    context: Arc::clone(&self.context),
                    properties,
                    body,
                    routing_key,
                    attempt,
                    settled: AtomicBool::new(false),
                };
                Some(Delivery::new(event, attempt, Box::new(acker)))
            }
            Err(reason) => {
                tracing::warn!(group = %self.options.group, %reason, "not a valid cloudevent; parking it");
                let attempt = amqp::attempt(&properties, redelivered);
                let parked = park(
                    &self.context,
                    &properties,
                    &body,
                    &routing_key,
                    attempt,
                    &format!("invalid cloudevent: {reason}"),
                )
                .await;
                let result = match parked {
                    Ok(()) => acker.ack(BasicAckOptions::default()).await,
                    Err(error) => {
                        // The queue dead-letters a rejected message to the parking lot too.
                        tracing::warn!(%error, "could not park with the reason; rejecting instead");
                        acker.reject(BasicRejectOptions { requeue: false }).await
                    }
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "could not settle an invalid message; the broker redelivers it");
                }
                None
            }
        }
    }

    async fn close_channel(&mut self) {
        if let Some(open) = self.open.take()
            && open.channel.status().connected()
        {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                open.channel
                    .close(200, ShortString::from("subscription closed")),
            )
            .await;
        }
    }
}

#[async_trait]
impl Subscription for RabbitSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            if self.is_closed() {
                self.close_channel().await;
                return Ok(None);
            }
            let Some(open) = self.open.as_mut() else {
                match self.reopen().await {
                    Ok(()) => continue,
                    Err(BusError::Closed) => continue,
                    Err(error) => return Err(error),
                }
            };
            let mut closing = self.closing.clone();
            let connector = Arc::clone(&self.connector);
            let item = tokio::select! {
                _ = closing.wait_for(|c| *c) => continue,
                () = connector.closed() => continue,
                item = open.consumer.next() => item,
            };
            match item {
                Some(Ok(delivery)) => {
                    if let Some(delivery) = self.accept(delivery).await {
                        return Ok(Some(delivery));
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(group = %self.options.group, %error, "consumer lost; resuming");
                    self.open = None;
                }
                None => {
                    tracing::warn!(group = %self.options.group, "consumer cancelled by the broker; resuming");
                    self.open = None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), BusError> {
        self.closed = true;
        self.close_channel().await;
        Ok(())
    }
}

impl Drop for RabbitSubscription {
    fn drop(&mut self) {
        if let Some(open) = self.open.take()
            && open.channel.status().connected()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Closing the channel hands its unsettled deliveries back to the queue.
            runtime.spawn(async move {
                let _ = open
                    .channel
                    .close(200, ShortString::from("subscription dropped"))
                    .await;
            });
        }
    }
}

/// A copy of a delivered message with extra headers, for a retry queue or the parking lot.
fn copy_with(
    properties: &BasicProperties,
    routing_key: &ShortString,
    attempt: u32,
    extra: Option<(&str, &str)>,
) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        amqp::DELIVERIES_HEADER.into(),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    if !headers.contains_key(amqp::ROUTING_KEY_HEADER) {
        headers.insert(
            amqp::ROUTING_KEY_HEADER.into(),
            AMQPValue::LongString(LongString::from(routing_key.as_str())),
        );
    }
    if let Some((name, value)) = extra {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(amqp::PERSISTENT)
}

async fn park(
    context: &SettleContext,
    properties: &BasicProperties,
    body: &[u8],
    routing_key: &ShortString,
    attempt: u32,
    reason: &str,
) -> Result<(), BusError> {
    let props = copy_with(
        properties,
        routing_key,
        attempt,
        Some((amqp::REASON_HEADER, reason)),
    );
    context
        .connector
        .publish(
            &ShortString::from(""),
            &context.queues.parking_lot,
            true,
            body,
            &props,
        )
        .await
}

/// Settles one RabbitMQ delivery on its channel.
struct RabbitAcker {
    acker: lapin::Acker,
    context: Arc<SettleContext>,
    properties: BasicProperties,
    body: Bytes,
    routing_key: ShortString,
    attempt: u32,
    settled: AtomicBool,
}

impl fmt::Debug for RabbitAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitAcker")
            .field("queue", &self.context.queues.queue)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Acker for RabbitAcker {
    async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        match settlement {
            Settlement::Ack => {
                self.acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(lapin_error)?;
            }
            Settlement::Requeue => {
                self.acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .map_err(lapin_error)?;
            }
            Settlement::RetryAfter(delay) => {
                let ctx = &self.context;
                let delay_ms = topology::retry_delay_ms(delay);
                let deadline = Instant::now() + ctx.connector.config.publish_timeout;
                let live = ctx.connector.get(Some(deadline)).await?;
                let queue = topology::declare_retry_queue(
                    &live.connection,
                    &ctx.connector.config,
                    &ctx.queues,
                    delay_ms,
                )
                .await?;
                let props = copy_with(&self.properties, &self.routing_key, self.attempt, None);
                ctx.connector
                    .publish(&ShortString::from(""), &queue, true, &self.body, &props)
                    .await?;
                self.acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(lapin_error)?;
            }
            Settlement::DeadLetter(reason) => {
                park(
                    &self.context,
                    &self.properties,
                    &self.body,
                    &self.routing_key,
                    self.attempt,
                    &reason,
                )
                .await?;
                self.acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(lapin_error)?;
            }
            // Settlement is non_exhaustive for callers; a future variant hands the message back.
            #[allow(unreachable_patterns)]
            _ => {
                self.acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .map_err(lapin_error)?;
            }
        }
        self.settled.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for RabbitAcker {
    fn drop(&mut self) {
        // Dropped unsettled: hand it back now rather than when the channel closes.
        if !self.settled.load(Ordering::Acquire)
            && self.acker.usable()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let acker = self.acker.clone();
            runtime.spawn(async move {
                let _ = acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await;
            });
        }
    }
}
