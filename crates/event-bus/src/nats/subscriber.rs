//! [`NatsSubscriber`]: a consumer group's durable pull consumers, pulled
//! together by each member, with explicit acks, `max_ack_pending` from the
//! prefetch, and consumers (and the stream) created again when lost. A
//! message that is not a valid CloudEvent, or that went over the delivery
//! limit, is parked here with the reason.

use std::{collections::BTreeMap, fmt, pin::Pin, sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::DeliverPolicy};
use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};

use tokio::sync::watch;

use super::{
    ack::{AckQueue, InFlight},
    connection::Connection,
    consumer::{self, ConsumerId},
    park::{Parcel, park},
    pull::{Pulled, Puller},
    settle::{NatsAcker, SettleContext},
    stream, wire,
};
use crate::{Delivery, Health, SubscribeOptions, Subscriber, Subscription, error::BusError};

/// The [`Subscriber`] of a [`NatsBus`](crate::nats::NatsBus).
///
/// A subscription binds its group to its event types (a durable consumer
/// per type, created with "deliver new" the first time, so the group gets
/// every event published from then on) and pulls from every consumer its
/// group has, so that one member also receives the types another member
/// bound. When the connection drops, the client reconnects and pulling goes
/// on; when a consumer or the whole stream was deleted, the subscription
/// creates them again and says so in the log.
#[derive(Debug)]
pub struct NatsSubscriber {
    connection: Arc<Connection>,
    closing: watch::Sender<bool>,
}

impl NatsSubscriber {
    pub(crate) fn new(connection: Arc<Connection>) -> Self {
        Self {
            connection,
            closing: watch::channel(false).0,
        }
    }

    fn is_closed(&self) -> bool {
        *self.closing.borrow() || self.connection.is_closed()
    }
}

#[async_trait]
impl Subscriber for NatsSubscriber {
    async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        options.validate()?;
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        let config = &self.connection.config;
        let wanted = consumer::wanted(config, &options.group, &options.event_types)?;
        let in_flight = Arc::new(InFlight::default());
        in_flight.keep_alive(self.connection.client.clone(), config.ack_wait / 2);
        let context = Arc::new(SettleContext {
            connection: Arc::clone(&self.connection),
            parking_subject: wire::parking_subject(&config.parking_prefix, &options.group),
            acks: AckQueue::start(self.connection.client.clone()),
            in_flight,
        });
        let mut subscription = NatsSubscription {
            connection: Arc::clone(&self.connection),
            context,
            wanted,
            members: BTreeMap::new(),
            options,
            closing: self.closing.subscribe(),
            stop: stop_signal(self.closing.subscribe(), Arc::clone(&self.connection)),
            closed: false,
            pulling: None,
            held: None,
        };
        // Bound and pulling before this returns: later events reach the group.
        subscription.open().await?;
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
            self.connection.health()
        }
    }

    fn messaging(&self) -> crate::messaging::Messaging {
        // The destination is the subject's last part, the event type.
        crate::messaging::Messaging::new("nats")
    }
}

type StopSignal = Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;

/// Resolves once the subscriber or the bus is closed (a dropped subscriber
/// does not close its subscriptions: a router keeps its subscription only).
fn stop_signal(mut closing: watch::Receiver<bool>, connection: Arc<Connection>) -> StopSignal {
    Box::pin(async move {
        let closed_by_subscriber = async move {
            if closing.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = closed_by_subscriber => {}
            () = connection.closed() => {}
        }
    })
}

/// What the subscription knows of one of its group's consumers.
#[derive(Debug)]
struct Member {
    id: ConsumerId,
    /// When the server created the consumer (to tell a re-created stream).
    created: time::OffsetDateTime,
    /// The highest stream sequence pulled from it.
    last_seen: u64,
}

/// Something `try_next` took off the streams and left for `next`.
enum Held {
    Park(Box<Unfit>),
    Lost(String),
}

/// A pulled message that cannot be handed over, with why.
struct Unfit {
    message: async_nats::Message,
    attempt: u32,
    reason: String,
}

/// One member of a consumer group on NATS.
struct NatsSubscription {
    connection: Arc<Connection>,
    context: Arc<SettleContext>,
    /// The consumers this member's own options need.
    wanted: Vec<ConsumerId>,
    /// Every consumer of the group, by the index its pulled messages carry.
    members: BTreeMap<usize, Member>,
    options: SubscribeOptions,
    closing: watch::Receiver<bool>,
    stop: StopSignal,
    closed: bool,
    pulling: Option<Puller>,
    held: Option<Held>,
}

impl fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSubscription")
            .field("group", &self.options.group)
            .field("consumers", &self.members.len())
            .field("closed", &self.closed)
            .field("pulling", &self.pulling.is_some())
            .finish_non_exhaustive()
    }
}

/// The most messages one pull request asks for.
fn max_batch(prefetch: u16) -> usize {
    match prefetch {
        0 => 256,
        n => usize::from(n),
    }
}

impl NatsSubscription {
    fn is_closed(&self) -> bool {
        self.closed || *self.closing.borrow() || self.connection.is_closed()
    }

    /// Where a consumer that is missing starts: new events for a group bound
    /// now; after a loss, from the oldest event this member had not settled
    /// (or everything, when the stream itself was created again).
    fn start_of(
        &self,
        index: Option<usize>,
        stream_created: time::OffsetDateTime,
    ) -> DeliverPolicy {
        let Some(member) = index.and_then(|i| self.members.get(&i)) else {
            return DeliverPolicy::New;
        };
        if stream_created > member.created {
            tracing::error!(
                group = %self.options.group,
                stream = %self.connection.config.stream,
                "the stream was deleted and created again: the events it held and had not \
                 delivered are gone; consuming the new stream from its start"
            );
            return DeliverPolicy::All;
        }
        let floor = index
            .and_then(|i| self.context.in_flight.lowest(i))
            .unwrap_or(member.last_seen + 1);
        tracing::error!(
            group = %self.options.group,
            consumer = %member.id.name,
            from = floor,
            "the consumer was deleted; creating it again from the oldest unsettled event"
        );
        DeliverPolicy::ByStartSequence {
            start_sequence: floor.max(1),
        }
    }

    /// Makes sure of the stream and the group's consumers, then pulls from all of them.
    async fn open(&mut self) -> Result<(), BusError> {
        let config = Arc::clone(&self.connection.config);
        let js = &self.connection.js;
        let mut stream = match consumer::event_stream(js, &config).await? {
            Some(stream) => stream,
            None => {
                tracing::error!(stream = %config.stream, "the event stream is gone; creating it again");
                stream::ensure(js, &config).await?;
                consumer::event_stream(js, &config)
                    .await?
                    .ok_or_else(|| BusError::Connection("the event stream vanished again".into()))?
            }
        };
        let stream_created = stream
            .info()
            .await
            .map_err(stream::connection_error)?
            .created;
        let mut ids = self.wanted.clone();
        for found in consumer::of_group(&stream, &config, &self.options.group).await? {
            if !ids.iter().any(|id| id.name == found.name) {
                ids.push(found);
            }
        }
        // Consumers known from before but gone from the listing (deleted) are wanted too.
        for member in self.members.values() {
            if !ids.iter().any(|id| id.name == member.id.name) {
                ids.push(member.id.clone());
            }
        }
        let mut pulled = Vec::new();
        for id in ids {
            let index = self
                .members
                .iter()
                .find(|(_, m)| m.id.name == id.name)
                .map(|(i, _)| *i);
            let pull = match consumer::get(js, &stream, &id.name).await? {
                Some(existing) => existing,
                None => {
                    let deliver = self.start_of(index, stream_created);
                    let settings = consumer::consumer_config(
                        &config,
                        &self.options.group,
                        &id,
                        self.options.prefetch,
                        deliver,
                    );
                    consumer::create(&stream, settings).await?
                }
            };
            let created = pull.cached_info().created;
            let index = match index {
                Some(i) => {
                    if let Some(member) = self.members.get_mut(&i) {
                        member.created = created;
                    }
                    i
                }
                None => {
                    let i = self.members.len();
                    self.members.insert(
                        i,
                        Member {
                            id,
                            created,
                            last_seen: 0,
                        },
                    );
                    i
                }
            };
            pulled.push((index, pull));
        }
        self.pulling = Some(Puller::new(pulled, max_batch(self.options.prefetch)));
        Ok(())
    }

    /// Opens again, with backoff while the server is away.
    async fn reopen(&mut self) -> Result<(), BusError> {
        let config = Arc::clone(&self.connection.config);
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
            match self.open().await {
                Ok(()) => {
                    tracing::info!(group = %self.options.group, "pulling again");
                    return Ok(());
                }
                Err(
                    error @ (BusError::StreamMismatch { .. } | BusError::InvalidSubscription(_)),
                ) => {
                    tracing::error!(group = %self.options.group, %error, "cannot pull again");
                    return Err(error);
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(config.reconnect_max_delay);
                    tracing::warn!(group = %self.options.group, %error, ?delay, "could not pull; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = &mut self.stop => self.closed = true,
                    }
                }
            }
        }
    }

    /// Turns a pulled message into a [`Delivery`], or says why it must be parked.
    fn accept(
        &mut self,
        index: usize,
        message: jetstream::Message,
    ) -> Result<Delivery, Box<Unfit>> {
        let (attempt, sequence) = match message.info() {
            Ok(info) => (
                u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX),
                info.stream_sequence,
            ),
            Err(_) => (1, 0),
        };
        if let Some(member) = self.members.get_mut(&index) {
            member.last_seen = member.last_seen.max(sequence);
        }
        let message = message.message;
        let max = self.connection.config.max_deliver;
        if attempt > max {
            return Err(Box::new(Unfit {
                message,
                attempt,
                reason: format!(
                    "delivered {attempt} times, more than the limit of {max} (NatsConfig::max_deliver)"
                ),
            }));
        }
        let Some(reply) = message.reply.clone() else {
            return Err(Box::new(Unfit {
                message,
                attempt,
                reason: "not a jetstream delivery (no reply subject)".to_owned(),
            }));
        };
        match wire::from_nats(message.headers.as_ref(), message.payload.clone()) {
            Ok(event) => {
                let token = self.context.in_flight.add(reply.clone(), index, sequence);
                let acker = NatsAcker {
                    context: Arc::clone(&self.context),
                    reply,
                    token,
                    subject: message.subject,
                    headers: message.headers,
                    payload: message.payload,
                    attempt,
                    settled: std::sync::atomic::AtomicBool::new(false),
                };
                Ok(Delivery::new(event, attempt, Box::new(acker)))
            }
            Err(reason) => Err(Box::new(Unfit {
                message,
                attempt,
                reason: format!("invalid cloudevent: {reason}"),
            })),
        }
    }

    /// Parks what cannot be handed over; if even that fails, asks for it again later.
    async fn park_unfit(&self, unfit: Box<Unfit>) {
        let Unfit {
            message,
            attempt,
            reason,
        } = *unfit;
        tracing::warn!(group = %self.options.group, %reason, "parking a message");
        let Some(reply) = message.reply.as_ref() else {
            tracing::error!(%reason, "a message without a reply subject cannot be settled");
            return;
        };
        let parcel = Parcel {
            subject: message.subject.as_str(),
            headers: message.headers.as_ref(),
            payload: &message.payload,
            deliveries: attempt,
        };
        if let Err(error) = park(
            &self.connection,
            &self.context.parking_subject,
            reply,
            &parcel,
            &reason,
        )
        .await
        {
            tracing::error!(%error, "could not park; the server delivers it again");
            let _ = self
                .context
                .send(reply, jetstream::AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }

    fn lost(&mut self, why: &str) {
        tracing::warn!(group = %self.options.group, why, "pulling stopped; resuming");
        self.hand_back_buffered();
    }

    /// Stops pulling; messages already received but not handed over go back
    /// at once (a NAK) rather than after `ack_wait`.
    fn hand_back_buffered(&mut self) {
        let Some(pulling) = self.pulling.take() else {
            return;
        };
        let context = Arc::clone(&self.context);
        let replies: Vec<_> = pulling
            .drain()
            .into_iter()
            .filter_map(|m| m.message.reply)
            .collect();
        if replies.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for reply in replies {
                    let _ = context.send(&reply, jetstream::AckKind::Nak(None)).await;
                }
            });
        }
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            if self.is_closed() {
                self.hand_back_buffered();
                return Ok(None);
            }
            match self.held.take() {
                Some(Held::Park(unfit)) => {
                    Box::pin(self.park_unfit(unfit)).await;
                    continue;
                }
                Some(Held::Lost(why)) => {
                    self.lost(&why);
                    continue;
                }
                None => {}
            }
            let Some(pulling) = self.pulling.as_mut() else {
                // Boxed, as parking below: rare paths whose futures would
                // otherwise make every `next` future several times larger.
                match Box::pin(self.reopen()).await {
                    Ok(()) | Err(BusError::Closed) => continue,
                    Err(error) => return Err(error),
                }
            };
            let item = tokio::select! {
                biased;
                item = pulling.next() => item,
                () = &mut self.stop => {
                    self.closed = true;
                    continue;
                }
            };
            match item {
                Ok(Pulled::Message(index, message)) => match self.accept(index, message) {
                    Ok(delivery) => return Ok(Some(delivery)),
                    Err(unfit) => Box::pin(self.park_unfit(unfit)).await,
                },
                Ok(Pulled::Failed(why)) => self.lost(&why),
                Err(error) => self.lost(&error.to_string()),
            }
        }
    }

    fn try_next(&mut self) -> Option<Delivery> {
        if self.held.is_some() || self.is_closed() {
            return None;
        }
        match self.pulling.as_mut()?.try_next()? {
            Pulled::Message(index, message) => match self.accept(index, message) {
                Ok(delivery) => Some(delivery),
                Err(unfit) => {
                    self.held = Some(Held::Park(unfit));
                    None
                }
            },
            Pulled::Failed(why) => {
                self.held = Some(Held::Lost(why));
                None
            }
        }
    }

    async fn close(&mut self) -> Result<(), BusError> {
        self.closed = true;
        self.hand_back_buffered();
        Ok(())
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        self.hand_back_buffered();
    }
}
