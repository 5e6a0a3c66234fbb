//! Certificate-bound tokens (RFC 8705 §3) through `AuthnLayer` on a real
//! TLS server with client certificates: the acceptor hands the peer
//! certificate to the layer as a `ClientCertificate` extension.

mod common;

use axum::Router;
use axum::routing::get;
use common::discovery_validator;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{AuthnError, AuthnLayer, ClientCertificate, Principal};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    RootCertStore, ServerConfig,
    crypto::aws_lc_rs,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};
use tower::ServiceExt;

/// A CA, the server's certificate, and two client certificates.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    /// (certificate DER, PEM of certificate and key) per client.
    clients: Vec<(Vec<u8>, String)>,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "tessera mtls test CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca).unwrap();
    let clients = ["alice-client", "mallory-client"]
        .into_iter()
        .map(|name| {
            let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
            client.distinguished_name.push(DnType::CommonName, name);
            client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate().unwrap();
            let cert = client.signed_by(&key, &ca).unwrap();
            (
                cert.der().to_vec(),
                format!("{}{}", cert.pem(), key.serialize_pem()),
            )
        })
        .collect();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_chain: vec![server_cert.der().clone()],
        server_key: server_key.serialize_der(),
        clients,
    }
}

async fn me(principal: Principal) -> String {
    principal
        .confirmation()
        .and_then(|c| c.x5t_s256())
        .unwrap_or("unbound")
        .to_owned()
}

/// A TLS server asking for (not requiring) client certificates; each
/// connection's peer certificate goes into its requests' extensions.
async fn serve_tls(pki: &Pki, layer: AuthnLayer) -> SocketAddr {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pki.server_chain.clone(),
            PrivateKeyDer::from(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = Router::new().route("/me", get(me)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|der| ClientCertificate::from_der(der.to_vec()));
                let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
                    if let Some(cert) = &cert {
                        req.extensions_mut().insert(cert.clone());
                    }
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn client(pki: &Pki, addr: SocketAddr, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .resolve("localhost", addr);
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn get_me(client: &reqwest::Client, addr: SocketAddr, token: &str) -> (u16, String) {
    let res = client
        .get(format!("https://localhost:{}/me", addr.port()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

#[tokio::test]
async fn a_certificate_bound_token_is_accepted_only_from_its_certificate() {
    let pki = pki();
    let idp = TestIssuer::start().await.unwrap();
    let addr = serve_tls(&pki, AuthnLayer::new(discovery_validator(&idp))).await;
    let (alice_der, alice_pem) = &pki.clients[0];
    let (_, mallory_pem) = &pki.clients[1];
    let token = idp.token().bound_to_certificate(alice_der).sign();

    let (status, body) = get_me(&client(&pki, addr, Some(alice_pem)), addr, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        ClientCertificate::from_der(alice_der.clone()).thumbprint()
    );

    let (status, body) = get_me(&client(&pki, addr, Some(mallory_pem)), addr, &token).await;
    assert_eq!(status, 401);
    assert!(
        body.contains(&AuthnError::CertificateMismatch.to_string()),
        "{body}"
    );

    let (status, body) = get_me(&client(&pki, addr, None), addr, &token).await;
    assert_eq!(status, 401);
    assert!(
        body.contains(&AuthnError::MissingCertificate.to_string()),
        "{body}"
    );

    // An unbound token needs no certificate.
    let unbound = idp.token().sign();
    let (status, body) = get_me(&client(&pki, addr, None), addr, &unbound).await;
    assert_eq!((status, body.as_str()), (200, "unbound"));
}

#[tokio::test]
async fn a_trusted_proxy_header_carries_the_certificate_only_when_configured() {
    use base64::Engine as _;
    let pki = pki();
    let idp = TestIssuer::start().await.unwrap();
    let (alice_der, _) = &pki.clients[0];
    let token = idp.token().bound_to_certificate(alice_der).sign();
    let header = base64::engine::general_purpose::STANDARD.encode(alice_der);
    for (layer, want) in [
        (AuthnLayer::new(discovery_validator(&idp)), 401),
        (
            AuthnLayer::new(discovery_validator(&idp)).client_certificate_from(
                tessera_authn::CertificateSource::TrustedHeader(http::HeaderName::from_static(
                    "x-client-cert",
                )),
            ),
            200,
        ),
    ] {
        let app = Router::new().route("/me", get(me)).layer(layer);
        let res = app
            .oneshot(
                http::Request::get("/me")
                    .header("authorization", format!("Bearer {token}"))
                    .header("x-client-cert", &header)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), want);
    }
}
