//! [`RabbitConfig`]: everything a user sets for a [`RabbitBus`]
//! (broker endpoints, exchange, queue type and prefix, timeouts, reconnect backoff, TLS),
//! and its `Debug`, which never shows a password or a private key.

use std::{fmt, time::Duration};

#[cfg(doc)]
use super::bus::RabbitBus;
use super::tls;
#[cfg(doc)]
use crate::BusError;

/// The default exchange name.
pub const DEFAULT_EXCHANGE: &str = "tessera.events";

/// The default [`RabbitConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The broker URLs as given; checked by [`endpoint::check`](super::endpoint::check).
    pub(crate) endpoints: Vec<String>,
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
            .field(
                "endpoints",
                &self
                    .endpoints
                    .iter()
                    .map(|url| redact(url))
                    .collect::<Vec<_>>(),
            )
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

/// The URL without its password; nothing of a URL that does not parse
/// (a list split inside a password, say, leaves pieces of it).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    if url::Url::parse(url).is_err() {
        return "<unparsable url>".to_owned();
    }
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
    /// `rabbitmq-tls`), or for the nodes of a cluster: `url` may be a
    /// comma-separated list of such URLs (`amqp://u:p@rabbit-1:5672/%2f,amqp://u:p@rabbit-2:5672/%2f`),
    /// as [`endpoints`](Self::endpoints) takes them. A `,` inside a URL (in a
    /// password, say) must be percent-encoded (`%2C`).
    ///
    /// The URLs are checked when the bus connects: an entry that is not a
    /// valid broker URL fails [`RabbitBus::connect`] with
    /// [`BusError::Connection`] naming the entry (by position and host, never
    /// its password).
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            endpoints: url.split(',').map(|u| u.trim().to_owned()).collect(),
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

    /// The broker endpoints, one URL each (replacing those given to
    /// [`new`](Self::new)): the nodes of a RabbitMQ cluster, or the addresses
    /// of its load balancers.
    ///
    /// Connecting, and every reconnect, tries them in turn, each within the
    /// [`connect_timeout`](Self::connect_timeout), starting after the node
    /// used last (so that a reconnect after a node's loss goes to another
    /// node first); an endpoint that fails is skipped with a warning. When all
    /// of them fail, [`RabbitBus::connect`] fails with an error listing each
    /// endpoint's failure, and a reconnect backs off
    /// ([`reconnect_delays`](Self::reconnect_delays)) and goes round again,
    /// with [`RabbitBus::health`] saying so. The health names the endpoint in
    /// use while up.
    ///
    /// Every endpoint must be a valid URL of the same scheme (all `amqp://`
    /// or all `amqps://`: a TLS list never falls back to plain text) and the
    /// same virtual host; users and passwords may differ. The TLS settings,
    /// queue prefix and everything else apply to each endpoint alike. An
    /// empty list, or a bad entry, fails [`RabbitBus::connect`] with
    /// [`BusError::Connection`] naming it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tessera_event_bus::BusError> {
    /// use tessera_event_bus::rabbitmq::{QueueType, RabbitBus, RabbitConfig};
    ///
    /// let config = RabbitConfig::new("amqp://app:secret@rabbit-1:5672/%2f")
    ///     .endpoints([
    ///         "amqp://app:secret@rabbit-1:5672/%2f",
    ///         "amqp://app:secret@rabbit-2:5672/%2f",
    ///         "amqp://app:secret@rabbit-3:5672/%2f",
    ///     ])
    ///     .queue_type(QueueType::Quorum { delivery_limit: 20 });
    /// let bus = RabbitBus::connect(config).await?;
    /// # let _ = bus;
    /// # Ok(()) }
    /// ```
    pub fn endpoints<I>(mut self, urls: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.endpoints = urls.into_iter().map(Into::into).collect();
        self
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
    /// queues `staging.comment-service.retry.<ms>ms`; [`RabbitBus::dead_letter_queue`]
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
