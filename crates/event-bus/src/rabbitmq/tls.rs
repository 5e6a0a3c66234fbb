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
//! Two lapin pitfalls are closed here, with or without TLS:
//!
//! - without a TLS backend compiled in, lapin opens an `amqps://` URL **in
//!   plain text** (amq-protocol-tcp falls back to the bare socket); such a
//!   URL is refused instead;
//! - amq-protocol-uri reads the host with `Url::domain()`, which is empty for
//!   an IP address, so `amqp://10.0.0.5` would connect to `localhost`; the
//!   host is taken from the URL as written.

use std::fmt;

use lapin::{
    Connection, ConnectionProperties,
    uri::{AMQPScheme, AMQPUri},
};

use crate::error::BusError;

/// The TLS settings of a [`RabbitConfig`](super::RabbitConfig): extra CA
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
    fn is_set(&self) -> bool {
        self.ca_certificates.is_some() || self.client_certificate.is_some()
    }
}

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

/// Opens a connection to `url` with the TLS `settings`.
pub(crate) async fn connect(
    url: &str,
    settings: &TlsSettings,
    properties: ConnectionProperties,
) -> Result<Connection, BusError> {
    let uri = parse_url(url)?;
    match uri.scheme {
        AMQPScheme::AMQP => {
            #[cfg(feature = "rabbitmq-tls")]
            if settings.is_set() {
                return Err(invalid(
                    "TLS settings are configured but the url is amqp:// (plain text); \
                     use amqps:// (port 5671 by default)",
                ));
            }
            Connection::connect_uri(uri, properties)
                .await
                .map_err(|e| BusError::Connection(Box::new(e)))
        }
        AMQPScheme::AMQPS => connect_tls(uri, settings, properties).await,
    }
}

#[cfg(not(feature = "rabbitmq-tls"))]
async fn connect_tls(
    _uri: AMQPUri,
    _settings: &TlsSettings,
    _properties: ConnectionProperties,
) -> Result<Connection, BusError> {
    Err(invalid(
        "amqps:// urls need the `rabbitmq-tls` feature of tessera-event-bus \
         (without it the connection would not be encrypted)",
    ))
}

#[cfg(feature = "rabbitmq-tls")]
async fn connect_tls(
    uri: AMQPUri,
    settings: &TlsSettings,
    properties: ConnectionProperties,
) -> Result<Connection, BusError> {
    let config = lapin_tls_config(settings)?;
    let (host, port) = (uri.authority.host.clone(), uri.authority.port);
    let runtime =
        lapin::runtime::default_runtime().map_err(|e| BusError::Connection(Box::new(e)))?;
    Connection::connect_uri_with_config(uri, properties, config, runtime)
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
fn lapin_tls_config(settings: &TlsSettings) -> Result<lapin::tcp::OwnedTLSConfig, BusError> {
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
    Ok(lapin::tcp::OwnedTLSConfig {
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
            connect(url, &settings, ConnectionProperties::default())
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
