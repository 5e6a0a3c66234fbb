//! One recovering broker connection: reconnects with backoff (trying the
//! configured endpoints in turn), re-declares the exchange, and reports its
//! health, naming the endpoint in use.
//!
//! lapin 4's own recovery (`enable_auto_recover`) replays topology inside the
//! client, but the application still has to notice each failed operation,
//! wait for recovery and redo it. Tessera does the whole cycle itself, so the
//! same idempotent code declares the topology at start and after a drop, and
//! a publish in flight at the drop is retried on the new connection.

use std::{
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{LongString, ShortString},
};
use tokio::sync::watch;

use super::{
    config::RabbitConfig,
    endpoint::{self, Endpoint},
    tls, topology,
};
use crate::{Health, error::BusError};

/// A live connection and its confirm channel.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) connection: Connection,
    /// Replaced after a negative confirm (see [`Live::replace_confirms`]).
    confirms: std::sync::RwLock<Channel>,
    pub(crate) generation: u64,
    /// The endpoint it is connected to (`host:port`).
    pub(crate) endpoint: Arc<str>,
}

impl Live {
    fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.confirms().status().connected()
    }

    /// The channel publishes go through, with publisher confirms.
    pub(crate) fn confirms(&self) -> Channel {
        self.confirms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the confirm channel `nacked` (if it is still the current one)
    /// with a new one on the same connection.
    ///
    /// Why: after a quorum queue's leader is lost, a channel that was
    /// publishing to it can go on receiving `basic.nack` for every publish
    /// routed to that queue long after a new leader serves it (measured on
    /// RabbitMQ 3.10 with `x-overflow: reject-publish`, which at-least-once
    /// dead-lettering requires: more than 90 s, while a new channel's
    /// publishes were confirmed at once). A nack is rare otherwise, so a new
    /// channel after one costs nothing in the normal case. Other publishes
    /// in flight on the old channel fail with a channel error and are
    /// retried on the new one (at least once).
    pub(crate) async fn replace_confirms(&self, nacked: &Channel) {
        if self.confirms().id() != nacked.id() {
            return; // Someone else replaced it already.
        }
        let fresh = async {
            let channel = self.connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>(channel)
        };
        match fresh.await {
            Ok(channel) => {
                let old = {
                    let mut current = self
                        .confirms
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if current.id() != nacked.id() {
                        None // Replaced meanwhile: keep theirs, drop ours.
                    } else {
                        Some(std::mem::replace(&mut *current, channel.clone()))
                    }
                };
                match old {
                    Some(old) => {
                        tracing::info!(endpoint = %self.endpoint, "publisher confirm channel replaced after a nack");
                        let _ = old
                            .close(200, ShortString::from("replaced after a nack"))
                            .await;
                    }
                    None => {
                        let _ = channel.close(200, ShortString::from("not needed")).await;
                    }
                }
            }
            // The connection is going: the watcher reconnects it.
            Err(error) => tracing::debug!(%error, "could not open a new confirm channel"),
        }
    }
}

/// A connection that comes back.
#[derive(Debug)]
pub(crate) struct Connector {
    pub(crate) config: Arc<RabbitConfig>,
    role: &'static str,
    /// The configured endpoints, checked.
    endpoints: Vec<Endpoint>,
    /// Where the next connection attempt starts in `endpoints`.
    next_endpoint: AtomicUsize,
    current: RwLock<Option<Arc<Live>>>,
    /// Single flight: one task reconnects, the others wait for it.
    reconnecting: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    health: Mutex<Health>,
    closed: AtomicBool,
    closing: watch::Sender<bool>,
    me: Weak<Connector>,
}

pub(super) fn connection_error(e: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Connection(Box::new(e))
}

impl Connector {
    /// Connects once (trying each endpoint once); fails if no endpoint can
    /// be reached now. `start` is the endpoint to try first.
    pub(crate) async fn connect(
        config: Arc<RabbitConfig>,
        endpoints: Vec<Endpoint>,
        start: usize,
        role: &'static str,
    ) -> Result<Arc<Self>, BusError> {
        let this = Arc::new_cyclic(|me| Self {
            config,
            role,
            endpoints,
            next_endpoint: AtomicUsize::new(start),
            current: RwLock::new(None),
            reconnecting: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            health: Mutex::new(Health::degraded("connecting")),
            closed: AtomicBool::new(false),
            closing: watch::channel(false).0,
            me: me.clone(),
        });
        let live = this.open(None).await?;
        this.install(live);
        Ok(this)
    }

    fn install(&self, live: Live) -> Arc<Live> {
        let live = Arc::new(live);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&live));
        self.set_health(self.up(&live));
        self.watch(&live);
        live
    }

    /// Reconnects as soon as the connection reports an error, so the health
    /// probe and the next operation find a working connection.
    fn watch(&self, live: &Arc<Live>) {
        let me = self.me.clone();
        let events = live.connection.events_listener();
        let generation = live.generation;
        let up = self.up(live);
        let endpoint = Arc::clone(&live.endpoint);
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                let Some(this) = me.upgrade() else { return };
                if this.is_closed() {
                    return;
                }
                match event {
                    // lapin reports a channel closed by the broker (a refused
                    // declare, a 404) here too: the connection lives on.
                    lapin::Event::Error(error) if this.is_usable(generation) => {
                        tracing::debug!(role = this.role, %endpoint, %error, "a channel failed; the connection is fine");
                    }
                    lapin::Event::Error(error) => {
                        tracing::warn!(role = this.role, %endpoint, %error, "connection lost; reconnecting");
                        let _ = this.reconnect(generation, None).await;
                        return;
                    }
                    lapin::Event::ConnectionBlocked(reason) => {
                        this.set_health(Health::degraded(format!(
                            "blocked by the broker: {reason}"
                        )));
                    }
                    lapin::Event::ConnectionUnblocked => this.set_health(up.clone()),
                    _ => {}
                }
            }
        });
    }

    /// Up, naming the endpoint in use.
    fn up(&self, live: &Live) -> Health {
        Health {
            detail: Some(format!("{} connection to {}", self.role, live.endpoint)),
            ..Health::up()
        }
    }

    /// Whether the connection of `generation` is the current one and usable.
    fn is_usable(&self, generation: u64) -> bool {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|live| live.generation == generation && live.is_usable())
    }

    fn set_health(&self, health: Health) {
        *self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = health;
    }

    pub(crate) fn health(&self) -> Health {
        if self.closed.load(Ordering::Acquire) {
            return Health::down("connection closed");
        }
        let health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            Some(live) if !live.is_usable() && health.is_up() => Health::degraded(format!(
                "{} connection to {} lost (connection {:?}, channel {:?}); reconnecting",
                self.role,
                live.endpoint,
                live.connection.status(),
                live.confirms().status()
            )),
            _ => health,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once the connector is closed.
    pub(crate) async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// One connection attempt: each endpoint in turn, from the rotating
    /// start, until one connects; an endpoint that fails is skipped with a
    /// warning. Fails when every endpoint failed (or `deadline` passed), with
    /// the error of each (a single endpoint's error as it is).
    async fn open(&self, deadline: Option<Instant>) -> Result<Live, BusError> {
        let count = self.endpoints.len();
        let start = self.next_endpoint.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for index in endpoint::rotation(start, count) {
            let endpoint = &self.endpoints[index];
            match self.open_endpoint(endpoint, deadline).await {
                Ok(live) => {
                    // The next attempt (after this connection is lost) starts elsewhere.
                    self.next_endpoint
                        .store((index + 1) % count, Ordering::Relaxed);
                    return Ok(live);
                }
                Err(error) if count == 1 => return Err(error),
                Err(error) => {
                    tracing::warn!(role = self.role, endpoint = %endpoint.label, %error, "broker endpoint failed; trying the next");
                    failures.push(format!("{}: {error}", endpoint.label));
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                }
            }
        }
        self.next_endpoint
            .store((start + 1) % count, Ordering::Relaxed);
        Err(BusError::Connection(
            format!(
                "no broker endpoint reachable ({} of {count} tried): {}",
                failures.len(),
                failures.join("; ")
            )
            .into(),
        ))
    }

    /// One connection attempt to `endpoint`, bounded by the connect timeout,
    /// or by what is left until `deadline` if that comes first.
    async fn open_endpoint(
        &self,
        endpoint: &Endpoint,
        deadline: Option<Instant>,
    ) -> Result<Live, BusError> {
        let mut limit = self.config.connect_timeout;
        let mut cut_short = false;
        if let Some(left) = deadline.map(|d| d.saturating_duration_since(Instant::now()))
            && left < limit
        {
            (limit, cut_short) = (left, true);
        }
        let attempt = tls::Attempt::new();
        match tokio::time::timeout(limit, self.open_within(endpoint, &attempt)).await {
            Ok(Ok(live)) => {
                attempt.succeed();
                Ok(live)
            }
            // Dropping `attempt` stops what lapin still does for it.
            Ok(Err(error)) => Err(error),
            Err(_elapsed) => Err(attempt.timed_out(limit, cut_short)),
        }
    }

    async fn open_within(
        &self,
        endpoint: &Endpoint,
        attempt: &tls::Attempt,
    ) -> Result<Live, BusError> {
        let mut props = ConnectionProperties::default();
        let name = match &self.config.connection_name {
            Some(name) => format!("{name} ({})", self.role),
            None => format!("tessera-event-bus ({})", self.role),
        };
        props = props.with_connection_name(LongString::from(name));
        // Every (re)connect: the same TLS settings, whichever endpoint.
        let connection = tls::connect(&endpoint.url, &self.config.tls, props, attempt).await?;
        attempt.set_stage(tls::Stage::Setup);
        let setup = async {
            let confirms = connection
                .create_channel()
                .await
                .map_err(connection_error)?;
            confirms
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(connection_error)?;
            topology::declare_exchange(&connection, &self.config).await?;
            Ok::<_, BusError>(confirms)
        };
        let confirms = match setup.await {
            Ok(confirms) => confirms,
            Err(error) => {
                // A broker that answers (a refused declare) gets a proper close.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    connection.close(200, ShortString::from("setup failed")),
                )
                .await;
                return Err(error);
            }
        };
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::debug!(role = self.role, generation, endpoint = %endpoint.label, "connected to the broker");
        Ok(Live {
            connection,
            confirms: std::sync::RwLock::new(confirms),
            generation,
            endpoint: Arc::from(endpoint.label.as_str()),
        })
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.config.reconnect_min_delay)
            .with_max_delay(self.config.reconnect_max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The current connection, reconnecting (with backoff, until `deadline`) if it is gone.
    pub(crate) async fn get(&self, deadline: Option<Instant>) -> Result<Arc<Live>, BusError> {
        if self.is_closed() {
            return Err(BusError::Closed);
        }
        let stale = {
            let current = self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match current.as_ref() {
                Some(live) if live.is_usable() => return Ok(Arc::clone(live)),
                Some(live) => live.generation,
                None => 0,
            }
        };
        self.reconnect(stale, deadline).await
    }

    /// Replaces the connection of generation `stale` (unless someone already did).
    ///
    /// With a `deadline`, gives up by then: while waiting for another task's
    /// reconnect, and by cutting the last attempt short.
    pub(crate) async fn reconnect(
        &self,
        stale: u64,
        deadline: Option<Instant>,
    ) -> Result<Arc<Live>, BusError> {
        let _flight = match deadline {
            None => self.reconnecting.lock().await,
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                match tokio::time::timeout_at(deadline, self.reconnecting.lock()).await {
                    Ok(flight) => flight,
                    Err(_elapsed) => {
                        return Err(BusError::Connection(
                            format!(
                                "the connection to the broker did not come back in time ({})",
                                self.health().detail.unwrap_or_default()
                            )
                            .into(),
                        ));
                    }
                }
            }
        };
        if let Some(live) = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && live.generation != stale
            && live.is_usable()
        {
            return Ok(Arc::clone(live));
        }
        let old = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            // Whatever is left of it: close without waiting for a dead peer.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    old.connection.close(200, ShortString::from("reconnecting")),
                )
                .await;
            });
        }
        let mut delays = self.backoff();
        // After a failed attempt, the health says why until the next one succeeds.
        self.set_health(Health::degraded("reconnecting to the broker"));
        loop {
            if self.is_closed() {
                return Err(BusError::Closed);
            }
            match self.open(deadline).await {
                Ok(live) => {
                    tracing::info!(
                        role = self.role,
                        generation = live.generation,
                        endpoint = %live.endpoint,
                        "reconnected to the broker"
                    );
                    return Ok(self.install(live));
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(self.config.reconnect_max_delay);
                    tracing::warn!(role = self.role, %error, ?delay, "reconnecting to the broker failed");
                    self.set_health(Health::degraded(format!("reconnecting: {error}")));
                    if deadline.is_some_and(|d| Instant::now() + delay > d) {
                        return Err(error);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.closed() => return Err(BusError::Closed),
                    }
                }
            }
        }
    }

    /// Publishes with a publisher confirm; retries on a new connection when
    /// the connection drops before the confirm arrives, until the publish timeout.
    pub(crate) async fn publish(
        &self,
        exchange: &ShortString,
        routing_key: &ShortString,
        mandatory: bool,
        body: &[u8],
        properties: &BasicProperties,
    ) -> Result<(), BusError> {
        let deadline = Instant::now() + self.config.publish_timeout;
        let mut delays = self.backoff();
        loop {
            let live = self.get(Some(deadline)).await?;
            let channel = live.confirms();
            let attempt = async {
                channel
                    .basic_publish(
                        exchange.clone(),
                        routing_key.clone(),
                        BasicPublishOptions {
                            mandatory,
                            immediate: false,
                        },
                        body,
                        properties.clone(),
                    )
                    .await?
                    .await
            };
            let error = match attempt.await {
                Ok(Confirmation::Ack(None)) => return Ok(()),
                Ok(Confirmation::Ack(Some(returned))) => {
                    return Err(if returned.reply_code == 312 {
                        BusError::Unroutable(routing_key.to_string())
                    } else {
                        BusError::Rejected(format!(
                            "returned by the broker: {}",
                            returned.reply_text
                        ))
                    });
                }
                Ok(Confirmation::Nack(_)) => {
                    live.replace_confirms(&channel).await;
                    return Err(BusError::Rejected(
                        "the broker nacked the message".to_owned(),
                    ));
                }
                Ok(Confirmation::NotRequested) => {
                    return Err(BusError::Rejected(
                        "publisher confirms are not enabled on the channel".to_owned(),
                    ));
                }
                Err(error) => error,
            };
            if self.is_closed() {
                return Err(BusError::Closed);
            }
            if !error.can_be_recovered() {
                return Err(connection_error(error));
            }
            let delay = delays.next().unwrap_or(self.config.reconnect_max_delay);
            if Instant::now() + delay > deadline {
                return Err(BusError::Connection(
                    format!(
                        "publish not confirmed: {error}; the connection did not recover within {:?}",
                        self.config.publish_timeout
                    )
                    .into(),
                ));
            }
            tracing::debug!(role = self.role, %error, "publish interrupted; retrying");
            // get() reconnects if the connection or channel is gone; the pause
            // keeps a restarting broker from being hammered.
            tokio::time::sleep(delay).await;
        }
    }

    /// Closes the connection for good. Idempotent.
    pub(crate) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.closing.send_replace(true);
        let live = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(live) = live {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                live.connection.close(200, ShortString::from("closing")),
            )
            .await;
        }
    }
}
