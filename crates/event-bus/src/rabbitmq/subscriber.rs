//! [`RabbitSubscriber`]: one queue per consumer group, manual acks, prefetch,
//! and consumers that resume after the connection drops. A delivery is
//! settled by its [`RabbitAcker`]; a message that is not a valid CloudEvent
//! is parked here, with the reason.

use std::{
    fmt,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Consumer,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions},
    types::{FieldTable, ShortString},
};
use tokio::sync::watch;

use super::{
    ack::AckBatcher,
    amqp,
    connection::{Connector, connection_error},
    park::park,
    settle::{RabbitAcker, SettleContext},
    topology::{self, GroupQueues},
};
use crate::{Delivery, Health, SubscribeOptions, Subscriber, Subscription, error::BusError};

/// The [`Subscriber`] of a [`RabbitBus`](crate::rabbitmq::RabbitBus).
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
        let queues = GroupQueues::new(&self.connector.config, &options.group)?;
        let mut subscription = RabbitSubscription {
            connector: Arc::clone(&self.connector),
            context: Arc::new(SettleContext {
                connector: Arc::clone(&self.connector),
                queues,
            }),
            options,
            closing: self.closing.subscribe(),
            stop: stop_signal(self.closing.subscribe(), Arc::clone(&self.connector)),
            closed: false,
            open: None,
            held: None,
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

    fn messaging(&self) -> crate::messaging::Messaging {
        crate::messaging::Messaging::new("rabbitmq")
            .with_destination(self.connector.config.exchange.as_str())
    }
}

struct Open {
    channel: Channel,
    consumer: Consumer,
    acks: Arc<AckBatcher>,
}

/// One member of a consumer group on RabbitMQ.
struct RabbitSubscription {
    connector: Arc<Connector>,
    context: Arc<SettleContext>,
    options: SubscribeOptions,
    closing: watch::Receiver<bool>,
    /// Resolves once the subscriber or the bus is closed; never polled after that.
    stop: StopSignal,
    closed: bool,
    open: Option<Open>,
    /// What [`Subscription::try_next`] took off the consumer but could not
    /// hand over without waiting; `next` deals with it first.
    held: Option<Held>,
}

/// A consumer item `try_next` took and left for `next`.
enum Held {
    /// Not a valid CloudEvent: to be parked.
    Invalid(Box<Invalid>),
    /// The consumer failed (`Some`) or the broker cancelled it (`None`).
    Lost(Option<lapin::Error>),
}

/// A delivered message that is not a valid CloudEvent, with why.
struct Invalid {
    acker: lapin::Acker,
    acks: Arc<AckBatcher>,
    tag: u64,
    properties: BasicProperties,
    body: Bytes,
    routing_key: ShortString,
    attempt: u32,
    reason: String,
}

type StopSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

/// One future, armed once per subscription, instead of new watchers on every
/// `next`. A dropped [`RabbitSubscriber`] does not close its subscriptions
/// (a router keeps its subscription and drops the subscriber), so a closed
/// watch channel means "never".
fn stop_signal(mut closing: watch::Receiver<bool>, connector: Arc<Connector>) -> StopSignal {
    Box::pin(async move {
        let closed_by_subscriber = async move {
            if closing.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = closed_by_subscriber => {}
            () = connector.closed() => {}
        }
    })
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
            .map_err(connection_error)?;
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(connection_error)?;
        let consumer = channel
            .basic_consume(
                self.context.queues.queue.clone(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(connection_error)?;
        let acks = AckBatcher::start(channel.clone(), self.options.prefetch);
        Ok(Open {
            channel,
            consumer,
            acks,
        })
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
                // Someone redeclared the group's queues with other arguments
                // meanwhile: retrying cannot fix that, the caller must see it.
                Err(error @ BusError::QueueMismatch { .. }) => {
                    tracing::error!(group = %self.options.group, %error, "cannot consume again");
                    return Err(error);
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(config.reconnect_max_delay);
                    tracing::warn!(group = %self.options.group, %error, ?delay, "could not consume; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = &mut self.stop => self.closed = true,
                    }
                }
            }
        }
    }

    /// Turns a broker delivery into a [`Delivery`], or says why it is not a
    /// valid CloudEvent (to be parked with [`Self::park_invalid`]).
    fn accept(
        &self,
        d: lapin::message::Delivery,
        acks: Arc<AckBatcher>,
    ) -> Result<Delivery, Box<Invalid>> {
        let lapin::message::Delivery {
            delivery_tag,
            routing_key,
            redelivered,
            properties,
            data,
            acker,
            ..
        } = d;
        let body = Bytes::from(data);
        acks.track(delivery_tag);
        let attempt = amqp::attempt(&properties, redelivered);
        match amqp::from_amqp(&properties, body.clone()) {
            Ok(event) => {
                let acker = RabbitAcker {
                    acker,
                    acks,
                    tag: delivery_tag,
                    context: Arc::clone(&self.context),
                    properties,
                    body,
                    routing_key,
                    attempt,
                    settled: AtomicBool::new(false),
                };
                Ok(Delivery::new(event, attempt, Box::new(acker)))
            }
            Err(reason) => Err(Box::new(Invalid {
                acker,
                acks,
                tag: delivery_tag,
                properties,
                body,
                routing_key,
                attempt,
                reason: reason.to_string(),
            })),
        }
    }

    /// Parks a message that is not a valid CloudEvent, with the reason.
    async fn park_invalid(&self, invalid: Box<Invalid>) {
        let Invalid {
            acker,
            acks,
            tag,
            properties,
            body,
            routing_key,
            attempt,
            reason,
        } = *invalid;
        tracing::warn!(group = %self.options.group, %reason, "not a valid cloudevent; parking it");
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
        acks.untrack(tag);
    }

    /// The consumer failed or was cancelled: consume again at the next `next`.
    fn lost(&mut self, error: Option<lapin::Error>) {
        match error {
            Some(error) => {
                tracing::warn!(group = %self.options.group, %error, "consumer lost; resuming");
            }
            None => {
                tracing::warn!(group = %self.options.group, "consumer cancelled by the broker; resuming");
            }
        }
        self.open = None;
    }

    async fn close_channel(&mut self) {
        if let Some(open) = self.open.take()
            && open.channel.status().connected()
        {
            // Acks still waiting to be grouped go out before the channel closes.
            let _ = open.acks.flush_all().await;
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
            match self.held.take() {
                Some(Held::Invalid(invalid)) => {
                    self.park_invalid(invalid).await;
                    continue;
                }
                Some(Held::Lost(error)) => {
                    self.lost(error);
                    continue;
                }
                None => {}
            }
            let Some(open) = self.open.as_mut() else {
                match self.reopen().await {
                    Ok(()) => continue,
                    Err(BusError::Closed) => continue,
                    Err(error) => return Err(error),
                }
            };
            let acks = Arc::clone(&open.acks);
            let item = tokio::select! {
                biased;
                item = open.consumer.next() => item,
                () = &mut self.stop => {
                    self.closed = true;
                    continue;
                }
            };
            match item {
                Some(Ok(delivery)) => match self.accept(delivery, acks) {
                    Ok(delivery) => return Ok(Some(delivery)),
                    Err(invalid) => self.park_invalid(invalid).await,
                },
                Some(Err(error)) => self.lost(Some(error)),
                None => self.lost(None),
            }
        }
    }

    /// A delivery lapin has already received, if any (a valid one: an
    /// invalid message or a lost consumer is left for `next`).
    fn try_next(&mut self) -> Option<Delivery> {
        if self.held.is_some() || self.is_closed() {
            return None;
        }
        let open = self.open.as_mut()?;
        // Polled once; when nothing is ready, the next `next` polls the
        // consumer again with a real waker.
        let item = futures_util::FutureExt::now_or_never(open.consumer.next())?;
        let acks = Arc::clone(&open.acks);
        match item {
            Some(Ok(delivery)) => match self.accept(delivery, acks) {
                Ok(delivery) => Some(delivery),
                Err(invalid) => {
                    self.held = Some(Held::Invalid(invalid));
                    None
                }
            },
            Some(Err(error)) => {
                self.held = Some(Held::Lost(Some(error)));
                None
            }
            None => {
                self.held = Some(Held::Lost(None));
                None
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
