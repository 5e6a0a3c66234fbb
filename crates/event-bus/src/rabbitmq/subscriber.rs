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
    acks: Arc<AckBatcher>,
}

/// Groups the acks of one channel into `basic.ack` with `multiple`.
///
/// An ack frame per delivery makes lapin's I/O loop the bottleneck, so acks
/// are collected for a moment and sent as one `multiple` ack up to the
/// highest tag below which every delivery of the channel is settled. Nacks
/// and rejects go out one by one, and a tag stays "outstanding" until its
/// nack or reject was sent, so a `multiple` ack never covers it.
///
/// Handlers finish out of order, so an ack often sits above a delivery
/// still being handled. Such an ack is held for one more flush (a few
/// milliseconds), by when the delivery below has usually finished and one
/// `multiple` ack covers both; an ack still blocked after that goes out on
/// its own, so a slow handler never holds up the prefetch window for long.
/// Acks still pending when a channel dies are lost with it: the broker
/// redelivers those messages (a duplicate, which consumers tolerate), never
/// drops them.
#[derive(Debug)]
struct AckBatcher {
    channel: Channel,
    state: std::sync::Mutex<AckState>,
    /// Rung by the first ack after a flush.
    wake: Arc<tokio::sync::Notify>,
    /// Rung when `batch` acks wait: they go out without the delay.
    full: Arc<tokio::sync::Notify>,
    batch: usize,
}

impl Drop for AckBatcher {
    fn drop(&mut self) {
        // Lets the flusher task see that the batcher is gone.
        self.wake.notify_one();
    }
}

#[derive(Debug, Default)]
struct AckState {
    /// Handed out, not settled yet.
    outstanding: std::collections::BTreeSet<u64>,
    /// Acked since the last flush.
    acked: std::collections::BTreeSet<u64>,
    /// Acked, but above an outstanding tag at the last flush.
    held: std::collections::BTreeSet<u64>,
}

/// What one flush sends.
#[derive(Debug, Default, PartialEq, Eq)]
struct AckPlan {
    /// One `multiple` ack up to this tag.
    multiple: Option<u64>,
    /// Acks sent on their own (held for a whole flush already).
    single: Vec<u64>,
    /// Whether acks are still held, so another flush must follow.
    holding: bool,
}

impl AckState {
    fn plan(&mut self) -> AckPlan {
        let limit = self.outstanding.first().copied().unwrap_or(u64::MAX);
        let mut acked = std::mem::take(&mut self.acked);
        let blocked = acked.split_off(&limit);
        let mut held = std::mem::take(&mut self.held);
        let still_held = held.split_off(&limit);
        // Everything below the lowest outstanding tag goes in one frame.
        let multiple = acked.last().copied().max(held.last().copied());
        self.held = blocked;
        AckPlan {
            multiple,
            single: still_held.into_iter().collect(),
            holding: !self.held.is_empty(),
        }
    }
}

/// Acks waiting longer than this are sent even if fewer than a batch.
const ACK_DELAY: Duration = Duration::from_millis(2);
/// The most acks one batch waits for.
const ACK_BATCH: usize = 64;

/// How many acks make a batch that goes out at once: a quarter of the
/// prefetch window (at most [`ACK_BATCH`]), so the broker always has room
/// to send more while a batch waits, as a consumer acking every
/// `prefetch / 4` messages with `multiple` has.
/// (Prefetch 0 is an unlimited window.)
fn ack_batch(prefetch: u16) -> usize {
    match prefetch {
        0 => ACK_BATCH,
        n => (usize::from(n) / 4).clamp(1, ACK_BATCH),
    }
}

impl AckBatcher {
    fn start(channel: Channel, prefetch: u16) -> Arc<Self> {
        let this = Arc::new(Self {
            channel,
            state: std::sync::Mutex::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            full: Arc::new(tokio::sync::Notify::new()),
            batch: ack_batch(prefetch),
        });
        let weak = Arc::downgrade(&this);
        let (wake, full) = (Arc::clone(&this.wake), Arc::clone(&this.full));
        tokio::spawn(async move {
            let mut holding = false;
            loop {
                if !holding {
                    wake.notified().await;
                }
                // Let more acks join, unless a batch is full meanwhile.
                tokio::select! {
                    () = tokio::time::sleep(ACK_DELAY) => {}
                    () = full.notified() => {}
                }
                let Some(this) = weak.upgrade() else { return };
                if !this.channel.status().connected() {
                    return;
                }
                match this.flush().await {
                    Ok(still_holding) => holding = still_holding,
                    Err(error) => {
                        tracing::debug!(%error, "could not send acks; the broker redelivers");
                        return;
                    }
                }
            }
        });
        this
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn track(&self, tag: u64) {
        self.lock().outstanding.insert(tag);
    }

    /// The tag was settled individually (nack, reject) and the frame sent.
    fn untrack(&self, tag: u64) {
        self.lock().outstanding.remove(&tag);
        self.wake.notify_one();
    }

    fn ack(&self, tag: u64) {
        let waiting = {
            let mut state = self.lock();
            state.outstanding.remove(&tag);
            state.acked.insert(tag);
            state.acked.len()
        };
        if waiting == 1 {
            self.wake.notify_one();
        }
        if waiting == self.batch {
            self.full.notify_one();
        }
    }

    /// Sends what can be acked now; `Ok(true)` while acks are held back.
    async fn flush(&self) -> Result<bool, lapin::Error> {
        let plan = self.lock().plan();
        if let Some(tag) = plan.multiple {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
        }
        // Pipelined: every frame is queued before any is awaited.
        futures_util::future::try_join_all(plan.single.iter().map(|&tag| {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: false })
        }))
        .await?;
        Ok(plan.holding)
    }

    /// Sends every ack, held ones included (before the channel closes).
    async fn flush_all(&self) -> Result<(), lapin::Error> {
        while self.flush().await? {}
        Ok(())
    }
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
    acks: Arc<AckBatcher>,
    tag: u64,
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

impl RabbitAcker {
    fn ack(&self) -> Result<(), BusError> {
        if !self.acker.usable() {
            return Err(BusError::Connection(
                "the channel of this delivery is gone; the broker redelivers it".into(),
            ));
        }
        self.acks.ack(self.tag);
        Ok(())
    }

    async fn requeue(&self) -> Result<(), BusError> {
        self.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .map_err(lapin_error)?;
        self.acks.untrack(self.tag);
        Ok(())
    }
}

#[async_trait]
impl Acker for RabbitAcker {
    /// An ack is grouped by the channel's ack batcher: nothing to wait for.
    fn try_settle(&self, settlement: Settlement) -> Result<Result<(), BusError>, Settlement> {
        match settlement {
            Settlement::Ack => Ok(self
                .ack()
                .map(|()| self.settled.store(true, Ordering::Release))),
            other => Err(other),
        }
    }

    async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        match settlement {
            Settlement::Ack => self.ack()?,
            Settlement::Requeue => self.requeue().await?,
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
                self.ack()?;
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
                self.ack()?;
            }
            // Settlement is non_exhaustive for callers; a future variant hands the message back.
            #[allow(unreachable_patterns)]
            _ => self.requeue().await?,
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
            let (acker, acks, tag) = (self.acker.clone(), Arc::clone(&self.acks), self.tag);
            runtime.spawn(async move {
                if acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .is_ok()
                {
                    acks.untrack(tag);
                }
            });
        }
    }
}

#[cfg(test)]
mod ack_tests {
    use super::{ACK_BATCH, AckPlan, AckState, ack_batch};

    #[test]
    fn a_batch_is_a_quarter_of_the_prefetch_window_within_bounds() {
        assert_eq!(ack_batch(200), 50);
        assert_eq!(ack_batch(100), 25);
        assert_eq!(ack_batch(1), 1, "tiny windows ack at once");
        assert_eq!(ack_batch(1000), ACK_BATCH);
        assert_eq!(ack_batch(0), ACK_BATCH, "0 is an unlimited window");
    }

    fn state(outstanding: &[u64], acked: &[u64]) -> AckState {
        AckState {
            outstanding: outstanding.iter().copied().collect(),
            acked: acked.iter().copied().collect(),
            held: Default::default(),
        }
    }

    #[test]
    fn acks_below_every_outstanding_tag_go_out_as_one_multiple_ack() {
        let mut s = state(&[], &[3, 1, 2]);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: Some(3),
                single: vec![],
                holding: false
            }
        );
        assert_eq!(s.plan(), AckPlan::default());
    }

    #[test]
    fn an_ack_above_an_outstanding_tag_is_held_then_joins_the_multiple_ack() {
        let mut s = state(&[2], &[1, 3, 4]);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: Some(1),
                single: vec![],
                holding: true
            }
        );
        // Tag 2 finished meanwhile: one multiple ack covers 2, 3 and 4.
        s.outstanding.remove(&2);
        s.acked.insert(2);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: Some(4),
                single: vec![],
                holding: false
            }
        );
    }

    #[test]
    fn an_ack_blocked_for_a_whole_flush_goes_out_alone_and_never_covers_the_slow_tag() {
        let mut s = state(&[2], &[3]);
        assert!(s.plan().holding);
        s.acked.insert(5);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: None,
                single: vec![3],
                holding: true
            }
        );
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: None,
                single: vec![5],
                holding: false
            }
        );
        assert!(
            s.outstanding.contains(&2),
            "the slow delivery stays unacked"
        );
    }
}
