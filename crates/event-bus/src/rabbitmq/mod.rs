//! The RabbitMQ backend (feature `rabbitmq`, lapin 4).
//!
//! [`RabbitBus::connect`] opens two connections (one for publishing, one
//! for consuming, so that the broker's flow control on publishers never
//! holds up acks) and declares the topology idempotently:
//!
//! - one durable **topic exchange** (default `tessera.events`); the routing
//!   key of every event is its `type`;
//! - per consumer group, one durable **queue** named after the group, bound
//!   by each event type it subscribes to, classic or quorum
//!   ([`QueueType`]; quorum queues get a delivery limit);
//! - per group, a **parking lot** `<group>.parking-lot` for dead letters,
//!   each with its reason in the `x-tessera-dead-letter-reason` header; the
//!   group's queue dead-letters rejected messages (and, on quorum queues,
//!   those over the delivery limit) there too;
//! - **retry queues** `<group>.retry.<ms>ms`, one per delay (rounded up to
//!   two significant digits), whose TTL dead-letters messages back to the
//!   group's queue.
//!
//! With [`RabbitConfig::queue_prefix`], every one of those queue names
//! starts with the prefix (`<prefix><group>`, `<prefix><group>.parking-lot`,
//! `<prefix><group>.retry.<ms>ms`), so that two environments or test runs
//! sharing a virtual host keep separate copies of the same group.
//!
//! Consumers ack manually; acks are grouped per channel into `basic.ack`
//! with `multiple` (sent within a few milliseconds, never covering a
//! delivery that is still in a handler or was nacked), so the broker and
//! lapin see one ack frame per batch rather than per message.
//!
//! Publishing is persistent and mandatory with publisher confirms; many
//! publishes are in flight on one channel at once. Messages are CloudEvents
//! in binary content mode ([`wire`](crate::wire), `docs/wire-format.md`).
//!
//! **Recovery**: when a connection drops (broker restart, network, a
//! force-close), the next operation reconnects with exponential backoff and
//! re-declares the exchange; a publish waiting for its confirm is published
//! again on the new connection (consumers dedupe on the event id) or fails
//! with [`BusError::Connection`] after the publish timeout; subscriptions
//! re-declare their queues and consume again, and the broker redelivers what
//! was unsettled on the old channel. [`RabbitBus::health`] says `Degraded`
//! while reconnecting. Each connection attempt has a deadline
//! ([`RabbitConfig::connect_timeout`]), so a peer that accepts connections but
//! never answers cannot stall recovery.
//!
//! **TLS**: `amqps://` URLs need the feature `rabbitmq-tls` (rustls with the
//! aws-lc-rs provider; without the feature such a URL is refused rather than
//! opened in plain text). The broker's certificate is checked against the
//! platform's trust store, plus the CA certificates given to
//! `RabbitConfig::tls_ca_certificates`; a client certificate for mutual TLS
//! (and RabbitMQ's `EXTERNAL` authentication) goes to
//! `RabbitConfig::tls_client_certificate`. Every reconnect uses the same
//! settings.
//!
//! ```no_run
//! # async fn run() -> Result<(), tessera_event_bus::BusError> {
//! use std::sync::Arc;
//! use tessera_event_bus::{EventPublisher, Publisher, Subscriber};
//! use tessera_event_bus::rabbitmq::{QueueType, RabbitBus, RabbitConfig};
//!
//! let config = RabbitConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .exchange("tessera.events")
//!     .queue_type(QueueType::Quorum { delivery_limit: 20 });
//! let bus = RabbitBus::connect(config).await?;
//! let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! let subscriber: Arc<dyn Subscriber> = Arc::new(bus.subscriber());
//! assert!(bus.health().is_up());
//! # let _ = (events, subscriber);
//! # Ok(()) }
//! ```

mod amqp;
mod connection;
mod dead_letter;
mod publisher;
mod subscriber;
mod tls;
mod topology;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use lapin::{
    options::BasicGetOptions,
    types::{AMQPValue, ShortString},
};

use self::connection::Connector;
pub use self::{
    dead_letter::RabbitDeadLetters, publisher::RabbitPublisher, subscriber::RabbitSubscriber,
};
use crate::{Health, HealthStatus, RawEvent, error::BusError};

/// The default exchange name.
pub const DEFAULT_EXCHANGE: &str = "tessera.events";

/// The default [`RabbitConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The header that carries why a message is in a parking lot.
pub const DEAD_LETTER_REASON_HEADER: &str = amqp::REASON_HEADER;

/// The kind of queue each consumer group gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueType {
    /// Classic durable queues (a single node).
    Classic,
    /// Quorum queues (replicated, RabbitMQ 3.10+): the group's queue, its retry queues and
    /// its parking lot, dead-lettering at least once; a message returned more than
    /// `delivery_limit` times goes to the parking lot (docs/operations.md).
    Quorum {
        /// Returns allowed before the broker dead-letters the message.
        delivery_limit: u32,
    },
}

/// Settings of a [`RabbitBus`].
#[derive(Clone)]
#[must_use]
pub struct RabbitConfig {
    pub(crate) url: String,
    pub(crate) exchange: String,
    pub(crate) queue_type: QueueType,
    pub(crate) connection_name: Option<String>,
    pub(crate) queue_prefix: String,
    pub(crate) publish_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_min_delay: Duration,
    pub(crate) reconnect_max_delay: Duration,
    pub(crate) queue_expires: Option<Duration>,
    pub(crate) exchange_auto_delete: bool,
    pub(crate) tls: tls::TlsSettings,
}

impl fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &redact(&self.url))
            .field("exchange", &self.exchange)
            .field("queue_type", &self.queue_type)
            .field("connection_name", &self.connection_name)
            .field("queue_prefix", &self.queue_prefix)
            .field("publish_timeout", &self.publish_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("queue_expires", &self.queue_expires)
            .field("exchange_auto_delete", &self.exchange_auto_delete)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl RabbitConfig {
    /// Settings for the broker at `url` (`amqp://user:password@host:5672/vhost`,
    /// or `amqps://user:password@host:5671/vhost` over TLS with the feature
    /// `rabbitmq-tls`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
            queue_type: QueueType::Classic,
            connection_name: None,
            queue_prefix: String::new(),
            publish_timeout: Duration::from_secs(30),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(10),
            queue_expires: None,
            exchange_auto_delete: false,
            tls: tls::TlsSettings::default(),
        }
    }

    /// The topic exchange (default `tessera.events`).
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchange = name.into();
        self
    }

    /// Classic (default) or quorum queues for the groups.
    pub fn queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = queue_type;
        self
    }

    /// A name the broker shows for the connections (`<name> (publish)`, `<name> (consume)`).
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// A prefix for the names of every group's queues (default: none).
    ///
    /// A group's queue is named after the group, so two deployments (or two
    /// test runs) on one virtual host that both use the group
    /// `comment-service` would share its queue and compete for its events.
    /// With a prefix `staging.` the group's queue is `staging.comment-service`,
    /// its parking lot `staging.comment-service.parking-lot` and its retry
    /// queues `staging.comment-service.retry.<ms>ms`; [`RabbitBus::parked`]
    /// reads the prefixed parking lot. The group name itself (in logs, in
    /// inbox records) stays as it is. The whole name must fit AMQP's 255
    /// bytes, or subscribing fails.
    pub fn queue_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.queue_prefix = prefix.into();
        self
    }

    /// How long a publish (or a settlement that publishes) may wait for the
    /// connection to come back before it fails (default 30 s).
    ///
    /// It bounds the whole operation: waiting for a reconnect that another
    /// task is running, and a connection attempt of its own, which is cut
    /// short at the deadline (the error then says so).
    pub fn publish_timeout(mut self, limit: Duration) -> Self {
        self.publish_timeout = limit;
        self
    }

    /// How long one connection attempt may take (default 10 s): the TCP
    /// connection, the TLS handshake for `amqps://`, the AMQP handshake,
    /// then opening the confirm channel and declaring the exchange.
    ///
    /// It applies to [`RabbitBus::connect`] (which makes one attempt per
    /// connection and fails with it) and to every reconnect attempt, plain
    /// or TLS. A broker or load balancer that accepts the TCP connection but
    /// never answers would otherwise hold the attempt, and with it every
    /// publish and subscription waiting for the connection, forever. When
    /// the time is up the attempt fails with [`BusError::Connection`] saying
    /// which step did not finish (`no AMQP handshake from host:port within
    /// 10s`); a reconnect then backs off ([`reconnect_delays`](Self::reconnect_delays))
    /// and tries again, as after any failure. The abandoned connection is
    /// shut down, even if the broker answers later: no socket or lapin I/O
    /// thread is left behind.
    ///
    /// Set it above the broker's worst handshake time under load (the AMQP
    /// handshake includes authentication, which can be slow with an LDAP or
    /// OAuth backend). The URL's `connection_timeout` query parameter has no
    /// effect (lapin's async connect ignores it); this setting replaces it.
    /// An operation with a deadline of its own ([`publish_timeout`](Self::publish_timeout))
    /// cuts its attempt short at that deadline.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// The reconnect backoff: exponential with jitter between these (default 100 ms to 10 s).
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min_delay = min;
        self.reconnect_max_delay = max.max(min);
        self
    }

    /// Lets the broker delete a group's queues after `idle` without consumers
    /// (`x-expires`), and the exchange once nothing is bound to it: for
    /// tests and short-lived groups, never for a service's real group, whose
    /// queue must keep events while the service is down.
    pub fn temporary_topology(mut self, idle: Duration) -> Self {
        self.queue_expires = Some(idle);
        self.exchange_auto_delete = true;
        self
    }

    /// Trusts the CA certificates in `pem` (one or more PEM `CERTIFICATE`
    /// blocks) for an `amqps://` broker, on top of the platform's trust store:
    /// for a broker whose certificate a private CA signed.
    ///
    /// Without this, `amqps://` URLs work with brokers whose certificate
    /// chains to a CA the platform trusts (Amazon MQ, CloudAMQP). The broker's
    /// certificate must also name the URL's host (a DNS name, or an IP
    /// address in its subject alternative names). On Linux the platform's
    /// trust store is read from the usual files, or from `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR` when they are set (pointing them at the private CA alone
    /// narrows the trust to it).
    ///
    /// The PEM is checked when the bus connects: no certificate in it, or
    /// one that cannot be a trust anchor, fails [`RabbitBus::connect`] with
    /// [`BusError::Connection`]. Setting it with an `amqp://` URL is an error
    /// too, rather than a connection in plain text.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tessera_event_bus::BusError> {
    /// use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};
    ///
    /// let ca = std::fs::read_to_string("/etc/tessera/rabbitmq-ca.pem").expect("the CA file");
    /// let config = RabbitConfig::new("amqps://app:secret@rabbitmq.internal:5671/%2f")
    ///     .tls_ca_certificates(ca);
    /// let bus = RabbitBus::connect(config).await?;
    /// # let _ = bus;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rabbitmq-tls")]
    pub fn tls_ca_certificates(mut self, pem: impl Into<String>) -> Self {
        self.tls.ca_certificates = Some(pem.into());
        self
    }

    /// Presents a client certificate during the TLS handshake (mutual TLS):
    /// `certificate_chain_pem` holds the client's certificate first, then any
    /// intermediate CA certificates, `private_key_pem` its unencrypted private
    /// key (PEM: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC
    /// PRIVATE KEY`). For a PKCS#12 file, convert it first (`openssl pkcs12
    /// -in client.p12 -nodes`).
    ///
    /// A broker that requires client certificates (`ssl_options.verify =
    /// verify_peer`, `fail_if_no_peer_cert = true`) accepts the connection
    /// only with one its CA signed. To log in *as* the certificate (RabbitMQ's
    /// `EXTERNAL` mechanism, plugin `rabbitmq_auth_mechanism_ssl`), add
    /// `auth_mechanism=external` to the URL and leave out the password.
    ///
    /// The key stays in memory for reconnects; [`RabbitConfig`]'s `Debug`
    /// never shows it. Both PEMs are checked when the bus connects.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tessera_event_bus::BusError> {
    /// use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};
    ///
    /// let read = |path| std::fs::read_to_string(path).expect("a PEM file");
    /// let config =
    ///     RabbitConfig::new("amqps://rabbitmq.internal:5671/%2f?auth_mechanism=external")
    ///         .tls_ca_certificates(read("/etc/tessera/rabbitmq-ca.pem"))
    ///         .tls_client_certificate(
    ///             read("/etc/tessera/client-chain.pem"),
    ///             read("/etc/tessera/client-key.pem"),
    ///         );
    /// let bus = RabbitBus::connect(config).await?;
    /// # let _ = bus;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rabbitmq-tls")]
    pub fn tls_client_certificate(
        mut self,
        certificate_chain_pem: impl Into<String>,
        private_key_pem: impl Into<String>,
    ) -> Self {
        self.tls.client_certificate = Some((certificate_chain_pem.into(), private_key_pem.into()));
        self
    }
}

/// A message in a group's parking lot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedMessage {
    /// The event, or why the message is not a valid CloudEvent.
    pub event: Result<RawEvent, String>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u32,
    /// The message body as it is.
    pub body: Bytes,
}

/// A RabbitMQ event bus: a publishing and a consuming connection, both recovering.
#[derive(Debug, Clone)]
pub struct RabbitBus {
    publishing: Arc<Connector>,
    consuming: Arc<Connector>,
}

impl RabbitBus {
    /// Connects and declares the exchange; fails if the broker cannot be reached now.
    pub async fn connect(config: RabbitConfig) -> Result<Self, BusError> {
        let config = Arc::new(config);
        let publishing = Connector::connect(Arc::clone(&config), "publish").await?;
        let consuming = Connector::connect(config, "consume").await?;
        Ok(Self {
            publishing,
            consuming,
        })
    }

    /// A publisher on the publishing connection (closing it closes only it).
    pub fn publisher(&self) -> RabbitPublisher {
        RabbitPublisher::new(Arc::clone(&self.publishing))
    }

    /// A subscriber on the consuming connection (closing it ends only its subscriptions).
    pub fn subscriber(&self) -> RabbitSubscriber {
        RabbitSubscriber::new(Arc::clone(&self.consuming))
    }

    /// The settings.
    pub fn config(&self) -> &RabbitConfig {
        &self.publishing.config
    }

    /// The exchange events are published to.
    pub fn exchange(&self) -> &str {
        &self.publishing.config.exchange
    }

    /// Up when both connections are, degraded while one reconnects, down once closed.
    pub fn health(&self) -> Health {
        let (p, c) = (self.publishing.health(), self.consuming.health());
        let rank = |h: &Health| match h.status {
            HealthStatus::Up => 0,
            HealthStatus::Degraded => 1,
            _ => 2,
        };
        if rank(&p) >= rank(&c) { p } else { c }
    }

    /// Closes both connections; publishers and subscriptions end. Idempotent.
    pub async fn close(&self) {
        self.publishing.close().await;
        self.consuming.close().await;
    }

    /// The dead letters of a group (its parking-lot queue) as a
    /// [`DeadLetterQueue`](crate::DeadLetterQueue): list, replay, discard.
    /// `group` is the group's name as subscribed; the configured
    /// [queue prefix](RabbitConfig::queue_prefix) is added here.
    pub fn dead_letter_queue(&self, group: &str) -> RabbitDeadLetters {
        RabbitDeadLetters::new(Arc::clone(&self.consuming), group)
    }

    /// The messages in a group's parking lot, without removing them (they
    /// are fetched unacked, then handed back). `group` is the group's name
    /// as subscribed; the configured [queue prefix](RabbitConfig::queue_prefix)
    /// is added here.
    pub async fn parked(&self, group: &str) -> Result<Vec<ParkedMessage>, BusError> {
        let queue = topology::GroupQueues::new(&self.consuming.config, group)?.parking_lot;
        let deadline = Instant::now() + self.consuming.config.publish_timeout;
        let live = self.consuming.get(Some(deadline)).await?;
        let err = |e: lapin::Error| BusError::Connection(Box::new(e));
        let channel = live.connection.create_channel().await.map_err(err)?;
        let mut parked = Vec::new();
        loop {
            let got = match channel
                .basic_get(queue.clone(), BasicGetOptions { no_ack: false })
                .await
            {
                Ok(Some(got)) => got,
                Ok(None) => break,
                // No parking lot yet (404 closes the channel): nothing parked.
                Err(_) if parked.is_empty() && !channel.status().connected() => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(err(e)),
            };
            let d = got.delivery;
            let headers = d.properties.headers().clone().unwrap_or_default();
            let text = |name: &str| match headers.inner().get(name) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
                _ => None,
            };
            let reason = text(amqp::REASON_HEADER)
                .or_else(|| {
                    text("x-first-death-reason")
                        .map(|r| format!("dead-lettered by the broker: {r}"))
                })
                .unwrap_or_default();
            let body = Bytes::from(d.data);
            parked.push(ParkedMessage {
                event: amqp::from_amqp(&d.properties, body.clone()),
                reason,
                deliveries: amqp::parked_deliveries(&d.properties),
                body,
            });
        }
        // Closing the channel hands every fetched message back to the queue.
        let _ = channel.close(200, ShortString::from("peeked")).await;
        Ok(parked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let config = RabbitConfig::new("amqp://user:s3cret@broker:5672/%2f");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("amqp://user:***@broker:5672/%2f"), "{debug}");
        assert_eq!(redact("not a url"), "<unparsable url>");
        assert_eq!(redact("amqp://broker"), "amqp://broker");
    }

    #[cfg(feature = "rabbitmq-tls")]
    #[test]
    fn debug_output_never_shows_the_client_key() {
        let key = "-----BEGIN PRIVATE KEY-----\nS0VZTUFURVJJQUw=\n-----END PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
        let config = RabbitConfig::new("amqps://broker:5671/%2f")
            .tls_ca_certificates(cert)
            .tls_client_certificate(cert, key);
        let debug = format!("{config:?}");
        assert!(!debug.contains("S0VZTUFURVJJQUw"), "{debug}");
        assert!(!debug.contains("Q0VSVA"), "{debug}");
        assert!(debug.contains("private key redacted"), "{debug}");
    }
}
