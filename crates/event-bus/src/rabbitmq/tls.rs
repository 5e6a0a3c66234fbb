//! Opening a broker connection, with TLS for `amqps://` URLs (feature
//! `rabbitmq-tls`).
//!
//! Every connection, the first and each reconnect, goes through [`connect`],
//! so they all use the same TLS settings. lapin does the TLS itself (rustls
//! with the aws-lc-rs provider and the platform's trust store, through
//! amq-protocol-tcp and rustls-connector); this module checks the settings,
//! hands them to lapin as an `OwnedTLSConfig`, and turns a failed handshake
//! into an error that says why.
//!
//! Three lapin pitfalls are closed here, with or without TLS:
//!
//! - without a TLS backend compiled in, lapin opens an `amqps://` URL **in
//!   plain text** (amq-protocol-tcp falls back to the bare socket); such a
//!   URL is refused instead;
//! - amq-protocol-uri reads the host with `Url::domain()`, which is empty for
//!   an IP address, so `amqp://10.0.0.5` would connect to `localhost`; the
//!   host is taken from the URL as written;
//! - a connect future that is dropped (a timeout) leaves lapin's I/O thread
//!   and socket behind, waiting for a handshake that may never come; every
//!   connection is opened as part of an [`Attempt`], which shuts the socket
//!   down when the attempt is given up on.

use std::{
    fmt, io,
    net::Shutdown,
    sync::{Arc, Mutex},
    time::Duration,
};

use lapin::{
    AsyncTcpStream, Connection, ConnectionProperties,
    tcp::{AMQPUriTcpExt, OwnedTLSConfig},
    uri::{AMQPScheme, AMQPUri},
};
use tokio::sync::watch;

use crate::error::BusError;

/// The TLS settings of a [`RabbitConfig`](crate::rabbitmq::RabbitConfig): extra CA
/// certificates to trust and a client certificate, both PEM. Its `Debug`
/// shows neither the certificates nor the key.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// PEM `CERTIFICATE` blocks trusted on top of the platform's roots.
    #[cfg(feature = "rabbitmq-tls")]
    pub(crate) ca_certificates: Option<String>,
    /// PEM certificate chain (leaf first) and PEM private key.
    #[cfg(feature = "rabbitmq-tls")]
    pub(crate) client_certificate: Option<(String, String)>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TlsSettings");
        #[cfg(feature = "rabbitmq-tls")]
        {
            let count = |pem: &str| pem.matches("-----BEGIN CERTIFICATE-----").count();
            d.field(
                "ca_certificates",
                &self
                    .ca_certificates
                    .as_deref()
                    .map(|pem| format!("{} PEM certificate(s)", count(pem))),
            );
            d.field(
                "client_certificate",
                &self.client_certificate.as_ref().map(|(chain, _)| {
                    format!("{} PEM certificate(s), private key redacted", count(chain))
                }),
            );
        }
        d.finish()
    }
}

impl TlsSettings {
    #[cfg(feature = "rabbitmq-tls")]
    pub(crate) fn is_set(&self) -> bool {
        self.ca_certificates.is_some() || self.client_certificate.is_some()
    }
}

/// Why an `amqps://` URL is refused without the feature `rabbitmq-tls`.
pub(crate) const TLS_FEATURE_MISSING: &str = "amqps:// urls need the `rabbitmq-tls` feature of \
     tessera-event-bus (without it the connection would not be encrypted)";

/// Why TLS settings with an `amqp://` URL are refused.
#[cfg(feature = "rabbitmq-tls")]
pub(crate) const TLS_SETTINGS_WITH_PLAIN_URL: &str = "TLS settings are configured but the url is \
     amqp:// (plain text); use amqps:// (port 5671 by default)";

fn invalid(message: impl Into<String>) -> BusError {
    BusError::Connection(message.into().into())
}

/// Parses the broker URL as lapin does, but keeps an IP address host.
pub(crate) fn parse_url(url: &str) -> Result<AMQPUri, BusError> {
    // Neither parser puts the URL (with its password) into its errors.
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|e: String| invalid(format!("invalid broker url: {e}")))?;
    let parsed = url::Url::parse(url).map_err(|e| invalid(format!("invalid broker url: {e}")))?;
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => uri.authority.host = ip.to_string(),
        Some(url::Host::Ipv6(ip)) => uri.authority.host = ip.to_string(),
        _ => {}
    }
    Ok(uri)
}

/// Opens a connection to `url` with the TLS `settings`, as part of `attempt`
/// (which can cut it short; see [`Attempt`]).
pub(crate) async fn connect(
    url: &str,
    settings: &TlsSettings,
    properties: ConnectionProperties,
    attempt: &Attempt,
) -> Result<Connection, BusError> {
    let uri = parse_url(url)?;
    attempt.target(&uri);
    match uri.scheme {
        AMQPScheme::AMQP => {
            #[cfg(feature = "rabbitmq-tls")]
            if settings.is_set() {
                return Err(invalid(TLS_SETTINGS_WITH_PLAIN_URL));
            }
            open(uri, properties, OwnedTLSConfig::default(), attempt)
                .await
                .map_err(|e| BusError::Connection(Box::new(e)))
        }
        AMQPScheme::AMQPS => connect_tls(uri, settings, properties, attempt).await,
    }
}

/// lapin's connect, with a transport that `attempt` can cut: the TCP
/// connection and TLS handshake race the attempt being abandoned, and the
/// socket is handed to the attempt before lapin starts the AMQP handshake on
/// it (lapin's I/O thread has no other way to be stopped before the
/// handshake completes).
async fn open(
    uri: AMQPUri,
    properties: ConnectionProperties,
    tls: OwnedTLSConfig,
    attempt: &Attempt,
) -> Result<Connection, lapin::Error> {
    let runtime = lapin::runtime::default_runtime()?;
    let state = Arc::clone(&attempt.state);
    Connection::connector(
        uri,
        runtime,
        async move |uri, runtime| {
            let transport = uri.connect_with_config_async(tls.as_ref(), &runtime);
            let stream = state.unless_abandoned(transport).await?;
            let socket = match &stream {
                AsyncTcpStream::Plain(tcp) => duplicate(tcp.get_ref()),
                #[cfg(feature = "rabbitmq-tls")]
                AsyncTcpStream::Rustls(tls) => duplicate(tls.get_ref().0.get_ref()),
                #[allow(unreachable_patterns)]
                _ => Err(io::Error::other("unexpected transport")),
            }?;
            state.arm(socket)?;
            Ok(stream)
        },
        properties,
    )
    .await
}

/// Another handle on the socket, to shut it down from outside lapin.
#[cfg(unix)]
fn duplicate(socket: &impl std::os::fd::AsFd) -> io::Result<std::net::TcpStream> {
    Ok(socket.as_fd().try_clone_to_owned()?.into())
}

/// Another handle on the socket, to shut it down from outside lapin.
#[cfg(windows)]
fn duplicate(socket: &impl std::os::windows::io::AsSocket) -> io::Result<std::net::TcpStream> {
    Ok(socket.as_socket().try_clone_to_owned()?.into())
}

/// Where a connection attempt is, for the error when it takes too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// TCP connection (and TLS handshake for `amqps://`).
    Transport,
    /// The AMQP handshake (protocol header, `connection.start` .. `connection.open`).
    Handshake,
    /// Opening the confirm channel and declaring the exchange.
    Setup,
}

/// One connection attempt, which can be given up on: dropping it before
/// [`Attempt::succeed`] (a timeout, a cancelled caller, an error) stops
/// whatever lapin still does for it.
///
/// lapin runs each connection on its own I/O thread; dropping the connect
/// future does not stop it: a peer that accepted the TCP connection but
/// never answers would keep that thread and its socket forever (the thread
/// waits for the socket, and owns the `Connection` in its pending handshake
/// reply). So the attempt keeps a second handle on the socket and shuts it
/// down: lapin's thread then reads end-of-file, fails the handshake (or, if
/// the handshake had just completed, the connection, which is then not
/// recovered: Tessera never enables lapin's own recovery), and ends,
/// closing its socket. Before there is a socket, the TCP connection or TLS
/// handshake in progress is abandoned instead.
#[derive(Debug)]
pub(crate) struct Attempt {
    state: Arc<AttemptState>,
    succeeded: bool,
}

#[derive(Debug)]
struct AttemptState {
    abandoned: watch::Sender<bool>,
    socket: Mutex<Option<std::net::TcpStream>>,
    target: Mutex<Option<(String, u16, AMQPScheme)>>,
    stage: Mutex<Stage>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AttemptState {
    async fn unless_abandoned<T>(
        &self,
        transport: impl Future<Output = io::Result<T>>,
    ) -> Result<T, lapin::Error> {
        let mut abandoned = self.abandoned.subscribe();
        tokio::select! {
            stream = transport => Ok(stream?),
            _ = abandoned.wait_for(|a| *a) => Err(abandoned_error().into()),
        }
    }

    /// Keeps `socket` to shut it down if the attempt is abandoned (at once if it already was).
    fn arm(&self, socket: std::net::TcpStream) -> io::Result<()> {
        let mut slot = lock(&self.socket);
        if *self.abandoned.borrow() {
            let _ = socket.shutdown(Shutdown::Both);
            return Err(abandoned_error());
        }
        *slot = Some(socket);
        *lock(&self.stage) = Stage::Handshake;
        Ok(())
    }
}

fn abandoned_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection attempt abandoned")
}

impl Attempt {
    pub(crate) fn new() -> Self {
        Self {
            state: Arc::new(AttemptState {
                abandoned: watch::Sender::new(false),
                socket: Mutex::new(None),
                target: Mutex::new(None),
                stage: Mutex::new(Stage::Transport),
            }),
            succeeded: false,
        }
    }

    fn target(&self, uri: &AMQPUri) {
        *lock(&self.state.target) = Some((
            uri.authority.host.clone(),
            uri.authority.port,
            uri.scheme.clone(),
        ));
    }

    /// The connection is open: past the AMQP handshake.
    pub(crate) fn set_stage(&self, stage: Stage) {
        *lock(&self.state.stage) = stage;
    }

    /// The connection is in use: let go of the socket and leave it open.
    pub(crate) fn succeed(mut self) {
        self.succeeded = true;
        lock(&self.state.socket).take();
    }

    /// The error for an attempt that took longer than `limit`; `cut_short`
    /// when the limit was what was left of a caller's deadline.
    pub(crate) fn timed_out(&self, limit: Duration, cut_short: bool) -> BusError {
        let target = match &*lock(&self.state.target) {
            Some((host, port, _)) => super::endpoint::label(host, *port),
            None => "the broker".to_owned(),
        };
        let tls = matches!(&*lock(&self.state.target), Some((_, _, AMQPScheme::AMQPS)));
        let what = match *lock(&self.state.stage) {
            Stage::Transport if tls => {
                format!("no TCP connection or TLS handshake with {target} within {limit:?}")
            }
            Stage::Transport => format!("no TCP connection to {target} within {limit:?}"),
            Stage::Handshake => format!("no AMQP handshake from {target} within {limit:?}"),
            Stage::Setup => format!(
                "{target} did not open the confirm channel and declare the exchange within {limit:?}"
            ),
        };
        let why = if cut_short {
            " (what was left of the operation's deadline)"
        } else {
            " (RabbitConfig::connect_timeout)"
        };
        invalid(format!("{what}{why}"))
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.succeeded {
            return;
        }
        self.state.abandoned.send_replace(true);
        if let Some(socket) = lock(&self.state.socket).take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(not(feature = "rabbitmq-tls"))]
async fn connect_tls(
    _uri: AMQPUri,
    _settings: &TlsSettings,
    _properties: ConnectionProperties,
    _attempt: &Attempt,
) -> Result<Connection, BusError> {
    Err(invalid(TLS_FEATURE_MISSING))
}

#[cfg(feature = "rabbitmq-tls")]
async fn connect_tls(
    uri: AMQPUri,
    settings: &TlsSettings,
    properties: ConnectionProperties,
    attempt: &Attempt,
) -> Result<Connection, BusError> {
    let config = lapin_tls_config(settings)?;
    let (host, port) = (uri.authority.host.clone(), uri.authority.port);
    open(uri, properties, config, attempt)
        .await
        .map_err(|e| match tls_failure(&e) {
            Some(reason) => invalid(format!(
                "TLS connection to {host}:{port} failed: {reason}{}",
                hint(reason, &host)
            )),
            None => BusError::Connection(Box::new(e)),
        })
}

/// Checks the PEM settings and builds lapin's TLS configuration.
#[cfg(feature = "rabbitmq-tls")]
fn lapin_tls_config(settings: &TlsSettings) -> Result<OwnedTLSConfig, BusError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

    let certificates = |pem: &str, what: &str| {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("invalid TLS settings: {what}: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(format!(
                "invalid TLS settings: {what}: no PEM CERTIFICATE block"
            )));
        }
        Ok(certs)
    };
    if let Some(pem) = &settings.ca_certificates {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(pem, "CA certificates")? {
            roots.add(cert).map_err(|e| {
                invalid(format!(
                    "invalid TLS settings: CA certificate not usable as a trust anchor: {e}"
                ))
            })?;
        }
    }
    if let Some((chain, key)) = &settings.client_certificate {
        certificates(chain, "client certificate")?;
        // The key's own parse error is about its PEM framing, never its content.
        PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
            invalid(format!(
                "invalid TLS settings: client private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"
            ))
        })?;
    }
    Ok(OwnedTLSConfig {
        cert_chain: settings.ca_certificates.clone(),
        identity: settings.client_certificate.as_ref().map(|(chain, key)| {
            lapin::tcp::OwnedIdentity::PKCS8 {
                pem: chain.clone().into_bytes(),
                key: key.clone().into_bytes(),
            }
        }),
    })
}

/// The rustls error behind a failed connection, if TLS is what failed.
#[cfg(feature = "rabbitmq-tls")]
fn tls_failure(error: &lapin::Error) -> Option<&rustls::Error> {
    let lapin::ErrorKind::IOError(io) = error.kind() else {
        return None;
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = io.get_ref().map(|e| e as _);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|e| e as _),
            None => e.source(),
        };
    }
    None
}

/// What to do about a failed handshake, when it is a common mistake.
#[cfg(feature = "rabbitmq-tls")]
fn hint(error: &rustls::Error, host: &str) -> String {
    use rustls::{AlertDescription, CertificateError, Error};

    match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            " (the broker's certificate is not signed by a CA this client trusts: \
             add the CA with RabbitConfig::tls_ca_certificates)"
                .to_owned()
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            " (the broker's certificate does not name the url's host `{host}`: \
             connect by a name the certificate lists)"
        ),
        Error::AlertReceived(AlertDescription::CertificateRequired) => {
            " (the broker asks for a client certificate: set \
             RabbitConfig::tls_client_certificate)"
                .to_owned()
        }
        Error::InvalidMessage(_) => {
            " (is the port a TLS port? AMQP over TLS is 5671 by default, plain AMQP 5672)"
                .to_owned()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_address_host_is_kept() {
        let uri = parse_url("amqps://u:p@10.1.2.3:5671/%2f").unwrap();
        assert_eq!(uri.authority.host, "10.1.2.3");
        assert_eq!(uri.scheme, AMQPScheme::AMQPS);
        let uri = parse_url("amqp://[::1]:5672/%2f").unwrap();
        assert_eq!(uri.authority.host, "::1");
        let uri = parse_url("amqp://broker.example:5672/%2f").unwrap();
        assert_eq!(uri.authority.host, "broker.example");
        assert!(parse_url("not a url").is_err());
    }

    #[tokio::test]
    async fn amqps_is_never_plain_text() {
        let err = connect(
            "amqps://u:p@127.0.0.1:1/%2f",
            &TlsSettings::default(),
            ConnectionProperties::default(),
            &Attempt::new(),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("u:p"), "{message}");
        #[cfg(not(feature = "rabbitmq-tls"))]
        assert!(message.contains("`rabbitmq-tls` feature"), "{message}");
        #[cfg(feature = "rabbitmq-tls")]
        assert!(message.starts_with("broker connection failed"), "{message}");
    }

    #[cfg(feature = "rabbitmq-tls")]
    #[tokio::test]
    async fn invalid_tls_settings_fail_before_connecting() {
        let connect = |settings: TlsSettings, url: &'static str| async move {
            connect(
                url,
                &settings,
                ConnectionProperties::default(),
                &Attempt::new(),
            )
            .await
            .unwrap_err()
            .to_string()
        };
        let url = "amqps://u:p@127.0.0.1:1/%2f";
        let garbage = TlsSettings {
            ca_certificates: Some("not a certificate".to_owned()),
            client_certificate: None,
        };
        let message = connect(garbage, url).await;
        assert!(message.contains("no PEM CERTIFICATE block"), "{message}");

        let key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let no_chain = TlsSettings {
            ca_certificates: None,
            client_certificate: Some((String::new(), key.to_owned())),
        };
        let message = connect(no_chain.clone(), url).await;
        assert!(message.contains("client certificate"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
        let debug = format!("{no_chain:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert!(debug.contains("private key redacted"), "{debug}");

        let plain = connect(no_chain, "amqp://u:p@127.0.0.1:1/%2f").await;
        assert!(plain.contains("use amqps://"), "{plain}");
    }
}
