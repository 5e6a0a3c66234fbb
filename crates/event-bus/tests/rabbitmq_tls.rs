//! The RabbitMQ backend over TLS (`amqps://`), on the real broker without
//! reconfiguring it: each test starts a TLS-terminating proxy (tokio-rustls,
//! a certificate for `localhost` from a CA made in the test) that forwards to
//! the plain AMQP port of `AMQP_URL`.
#![cfg(all(feature = "rabbitmq-tls", feature = "testkit"))]

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::rabbitmq::{
    PATIENCE, Ping, Proxy, assert_connect_gives_up, config, event, member, ping_router, unique,
    wait_until_up,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tessera_event_bus::{
    BusError, EventPublisher, Publisher,
    rabbitmq::{RabbitBus, RabbitConfig},
    testkit::{amqp_url, force_close_connections},
};
use tokio_rustls::rustls::{
    RootCertStore, ServerConfig,
    crypto::aws_lc_rs,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};

/// A certificate authority made for one test, and what it issued.
struct TestPki {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    client_chain_pem: String,
    client_key_pem: String,
    ca_der: CertificateDer<'static>,
}

fn issuer(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl TestPki {
    fn new() -> Self {
        // A name of its own: a CA that only shares the name is a bad signature, not an unknown issuer.
        let ca = issuer(&unique("tessera test CA"));
        // The broker's certificate: valid for the DNS name `localhost` only.
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "tessera-test-client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca).unwrap();
        Self {
            ca_pem: ca.pem(),
            server_chain: vec![server_cert.der().clone(), ca.der().clone()],
            server_key: server_key.serialize_der(),
            client_chain_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            ca_der: ca.der().clone(),
        }
    }

    /// The proxy's TLS settings; with `require_client_certificate`, only
    /// clients with a certificate from this CA get through (mutual TLS).
    fn server_config(&self, require_client_certificate: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_certificate {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        Arc::new(
            builder
                .with_single_cert(self.server_chain.clone(), key)
                .unwrap(),
        )
    }
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn a_router_handles_an_event_over_tls_with_a_private_ca() {
    let pki = TestPki::new();
    let proxy = Proxy::tls(pki.server_config(false)).await;
    let name = unique("tessera-tls");
    let config = config(proxy.url("localhost"), &name).tls_ca_certificates(pki.ca_pem.clone());
    let debug = format!("{config:?}");
    assert!(debug.contains("1 PEM certificate(s)"), "{debug}");
    assert!(!debug.contains("guest:guest"), "{debug}");
    let bus = RabbitBus::connect(config).await.expect("connects over TLS");
    // Both connections (publishing and consuming) went through the proxy's TLS.
    assert_eq!(proxy.handshakes(), 2);

    let (router, mut rx) = ping_router(&bus, unique("tls-router")).await;
    let events = EventPublisher::new(Arc::new(bus.publisher()), "/tests");
    events
        .publish(Ping { n: 7 })
        .await
        .expect("confirmed over TLS");
    assert_eq!(
        tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap(),
        Some(7)
    );
    assert!(bus.health().is_up());
    router.shutdown().await.unwrap();
    bus.close().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_connection_error() {
    let pki = TestPki::new();
    let proxy = Proxy::tls(pki.server_config(false)).await;
    let name = unique("tessera-tls-untrusted");

    // The platform's roots do not include the test CA.
    let err = RabbitBus::connect(config(proxy.url("localhost"), &name))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, BusError::Connection(_)), "{message}");
    assert!(
        message.contains(&format!(
            "TLS connection to localhost:{} failed: invalid peer certificate: UnknownIssuer",
            proxy.port
        )),
        "{message}"
    );
    assert!(
        message.contains("RabbitConfig::tls_ca_certificates"),
        "{message}"
    );
    assert!(!message.contains("guest:guest"), "{message}");

    // Another private CA is no better.
    let other = TestPki::new();
    let err = RabbitBus::connect(
        config(proxy.url("localhost"), &name).tls_ca_certificates(other.ca_pem.clone()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // The right CA, but the certificate names `localhost`, not 127.0.0.1.
    let err = RabbitBus::connect(
        config(proxy.url("127.0.0.1"), &name).tls_ca_certificates(pki.ca_pem.clone()),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, BusError::Connection(_)), "{message}");
    assert!(message.contains("not valid for name"), "{message}");
    assert!(
        message.contains("does not name the url's host `127.0.0.1`"),
        "{message}"
    );
    assert_eq!(proxy.handshakes(), 0, "no handshake completed");
}

#[tokio::test]
async fn a_broker_that_requires_a_client_certificate_refuses_a_client_without_one() {
    let pki = TestPki::new();
    let proxy = Proxy::tls(pki.server_config(true)).await;
    let name = unique("tessera-tls-no-client-cert");
    let err = RabbitBus::connect(
        config(proxy.url("localhost"), &name).tls_ca_certificates(pki.ca_pem.clone()),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, BusError::Connection(_)), "{message}");
    assert!(message.contains("client certificate"), "{message}");
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn mutual_tls_with_a_client_certificate() {
    let pki = TestPki::new();
    let proxy = Proxy::tls(pki.server_config(true)).await;
    let name = unique("tessera-mtls");
    let config = config(proxy.url("localhost"), &name)
        .tls_ca_certificates(pki.ca_pem.clone())
        .tls_client_certificate(pki.client_chain_pem.clone(), pki.client_key_pem.clone());
    let debug = format!("{config:?}");
    assert!(debug.contains("private key redacted"), "{debug}");
    let key_body = pki.client_key_pem.lines().nth(1).unwrap();
    assert!(!debug.contains(key_body), "{debug}");

    let bus = RabbitBus::connect(config)
        .await
        .expect("connects with mTLS");
    assert_eq!(proxy.handshakes(), 2);
    let (group, ty) = (unique("mtls"), "tessera.test.mtls.v1");
    let mut sub = member(&bus, &group, ty).await;
    let sent = event(ty, 1);
    bus.publisher().publish(sent.clone()).await.unwrap();
    let d = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.event().id(), sent.id());
    d.ack().await.unwrap();
    bus.close().await;
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn amqps_to_the_plain_amqp_port_is_a_clear_error() {
    let broker = url::Url::parse(&amqp_url()).unwrap();
    let url = format!(
        "amqps://guest:guest@localhost:{}/%2f",
        broker.port().unwrap_or(5672)
    );
    let err = RabbitBus::connect(RabbitConfig::new(url))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, BusError::Connection(_)), "{message}");
    assert!(message.contains("is the port a TLS port?"), "{message}");
}

#[tokio::test]
#[ignore = "needs RabbitMQ"]
async fn reconnects_over_tls_after_dropped_connections_and_loses_nothing_confirmed() {
    let pki = TestPki::new();
    let proxy = Proxy::tls(pki.server_config(false)).await;
    let name = unique("tessera-tls-reconnect");
    let bus = RabbitBus::connect(
        config(proxy.url("localhost"), &name).tls_ca_certificates(pki.ca_pem.clone()),
    )
    .await
    .unwrap();
    let (group, ty) = (unique("tls-reconnect"), "tessera.test.tls_reconnect.v1");
    let mut sub = member(&bus, &group, ty).await;
    let publisher = Arc::new(bus.publisher());
    let stop = Arc::new(AtomicBool::new(false));
    // Batches of pipelined publishes until the drops are over, so some are
    // in flight at each drop; every one that returned Ok was confirmed.
    let publishing = {
        let (publisher, stop) = (Arc::clone(&publisher), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut confirmed = HashSet::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<_> = (0..50).map(|i| event(ty, n + i)).collect();
                n += 50;
                let ids: Vec<_> = batch.iter().map(|e| e.id().to_owned()).collect();
                publisher
                    .publish_all(batch)
                    .await
                    .expect("publishes in flight at a drop are retried on the new connection");
                confirmed.extend(ids);
            }
            confirmed
        })
    };

    // The proxy cuts both TLS connections mid-stream...
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proxy.handshakes();
    proxy.cut_connections();
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_until_up(&bus).await;
    assert!(
        proxy.handshakes() >= before + 2,
        "both connections came back through the TLS proxy"
    );
    // ...then the broker force-closes them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proxy.handshakes();
    assert!(force_close_connections(&name).await >= 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    wait_until_up(&bus).await;
    assert!(
        proxy.handshakes() >= before + 2,
        "reconnected over TLS again"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);

    let mut expected = publishing.await.unwrap();
    assert!(expected.len() > 100, "{} confirmed", expected.len());
    while !expected.is_empty() {
        let d = tokio::time::timeout(PATIENCE, sub.next())
            .await
            .expect("every confirmed event arrives")
            .expect("the subscription works")
            .expect("the subscription is open");
        expected.remove(d.event().id());
        let _ = d.ack().await;
    }
    wait_until_up(&bus).await;
    bus.close().await;
}

#[tokio::test]
async fn a_peer_that_never_answers_the_tls_handshake_fails_the_connect_in_time() {
    // No broker needed: the proxy accepts and says nothing.
    let pki = TestPki::new();
    let proxy = Proxy::tls(pki.server_config(false)).await;
    proxy.black_hole(true);
    let limit = Duration::from_millis(500);
    let expected = format!(
        "no TCP connection or TLS handshake with localhost:{} within 500ms",
        proxy.port
    );
    assert_connect_gives_up(
        &proxy,
        config(proxy.url("localhost"), &unique("tessera-tls-silent"))
            .tls_ca_certificates(pki.ca_pem.clone())
            .connect_timeout(limit),
        limit,
        &expected,
    )
    .await;
}
