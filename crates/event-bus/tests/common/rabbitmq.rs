//! Shared helpers of the RabbitMQ tests: names, events, a bus config, group
//! members, a router of pings, waiting for the parking lot, and a TCP proxy
//! in front of the broker (optionally terminating TLS) that can cut its
//! connections or black-hole new ones.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tessera_event_bus::{
    Attributes, BusError, DeadLetter, DeadLetterQueue, Envelope, EventContext, HandlerError,
    HealthStatus, RawEvent, Router, SubscribeOptions, Subscriber, Subscription,
    rabbitmq::{RabbitBus, RabbitConfig},
    router::RouterHandle,
    testkit::amqp_url,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite},
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};

pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub fn event(ty: &str, n: u32) -> RawEvent {
    let mut attrs = Attributes::new(Attributes::new_id(), "/tests", ty);
    attrs.datacontenttype = Some("application/json".to_owned());
    attrs.time = Some(time::OffsetDateTime::now_utc());
    RawEvent::new(attrs, Bytes::from(format!(r#"{{"n":{n}}}"#)))
}

/// A bus config for the test: its own exchange, named connections, a
/// temporary topology and quick reconnects.
pub fn config(url: String, name: &str) -> RabbitConfig {
    RabbitConfig::new(url)
        .exchange(format!("{name}.events"))
        .connection_name(name)
        .temporary_topology(Duration::from_secs(60))
        .reconnect_delays(Duration::from_millis(50), Duration::from_secs(1))
}

pub async fn wait_until_up(bus: &RabbitBus) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !bus.health().is_up() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = bus.health();
    assert_eq!(health.status, HealthStatus::Up, "{health:?}");
}

/// A TCP proxy on 127.0.0.1 in front of the broker's plain AMQP port
/// (`AMQP_URL`), terminating TLS or not. It can cut every connection
/// through it at once, and black-hole new ones: accept them, then neither
/// forward nor answer anything, like a load balancer with no live backend;
/// or refuse them: close them at once, like a host whose broker is down.
pub struct Proxy {
    pub port: u16,
    tls: bool,
    handshakes: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
    black_hole: Arc<AtomicBool>,
    refuse: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    cut: watch::Sender<u64>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Counters {
    handshakes: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
    black_hole: Arc<AtomicBool>,
    refuse: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Proxy {
    /// A plain TCP proxy (`amqp://`).
    pub async fn plain() -> Self {
        Self::start(None).await
    }

    /// A TLS-terminating proxy (`amqps://`) with the server settings `config`.
    pub async fn tls(config: Arc<ServerConfig>) -> Self {
        Self::start(Some(TlsAcceptor::from(config))).await
    }

    async fn start(acceptor: Option<TlsAcceptor>) -> Self {
        let broker = url::Url::parse(&amqp_url()).expect("AMQP_URL is a url");
        let upstream = (
            broker.host_str().unwrap_or("127.0.0.1").to_owned(),
            broker.port().unwrap_or(5672),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counters = Counters {
            handshakes: Arc::new(AtomicUsize::new(0)),
            held: Arc::new(AtomicUsize::new(0)),
            released: Arc::new(AtomicUsize::new(0)),
            black_hole: Arc::new(AtomicBool::new(false)),
            refuse: Arc::new(AtomicBool::new(false)),
            refused: Arc::new(AtomicUsize::new(0)),
        };
        let cut = watch::channel(0_u64).0;
        let tls = acceptor.is_some();
        let task = tokio::spawn({
            let (counters, cut) = (counters.clone(), cut.clone());
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, upstream, counters) =
                        (acceptor.clone(), upstream.clone(), counters.clone());
                    let cut = cut.subscribe();
                    if counters.refuse.load(Ordering::SeqCst) {
                        counters.refused.fetch_add(1, Ordering::SeqCst);
                        drop(client);
                        continue;
                    }
                    tokio::spawn(async move {
                        if counters.black_hole.load(Ordering::SeqCst) {
                            return hold(client, &counters, cut).await;
                        }
                        match acceptor {
                            // A refused handshake (untrusted CA, no client certificate) ends here.
                            Some(acceptor) => {
                                let Ok(client) = acceptor.accept(client).await else {
                                    return;
                                };
                                counters.handshakes.fetch_add(1, Ordering::SeqCst);
                                forward(client, upstream, cut).await;
                            }
                            None => {
                                counters.handshakes.fetch_add(1, Ordering::SeqCst);
                                forward(client, upstream, cut).await;
                            }
                        }
                    });
                }
            }
        });
        Self {
            port,
            tls,
            handshakes: counters.handshakes,
            held: counters.held,
            released: counters.released,
            black_hole: counters.black_hole,
            refuse: counters.refuse,
            refused: counters.refused,
            cut,
            task,
        }
    }

    /// `AMQP_URL`'s credentials and virtual host, through the proxy, by `host`.
    pub fn url(&self, host: &str) -> String {
        let broker = url::Url::parse(&amqp_url()).unwrap();
        let (user, password) = (broker.username(), broker.password().unwrap_or_default());
        let vhost = match broker.path() {
            "" | "/" => "/%2f",
            path => path,
        };
        let scheme = if self.tls { "amqps" } else { "amqp" };
        format!("{scheme}://{user}:{password}@{host}:{}{vhost}", self.port)
    }

    /// Connections forwarded so far (for TLS: completed TLS handshakes).
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Cuts every connection through the proxy (and every black-holed one).
    pub fn cut_connections(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// From now on, black-holes new connections (`true`) or forwards them again.
    pub fn black_hole(&self, on: bool) {
        self.black_hole.store(on, Ordering::SeqCst);
    }

    /// From now on, closes new connections at once (`true`) or forwards them again.
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Black-holed connections so far.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Black-holed connections the client has closed since.
    pub fn released(&self) -> usize {
        self.released.load(Ordering::SeqCst)
    }
}

/// Reads and drops whatever the client sends, answers nothing, until the
/// client closes the connection (or the proxy cuts it).
async fn hold(
    mut client: tokio::net::TcpStream,
    counters: &Counters,
    mut cut: watch::Receiver<u64>,
) {
    counters.held.fetch_add(1, Ordering::SeqCst);
    let mut buf = [0_u8; 1024];
    loop {
        tokio::select! {
            read = client.read(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    counters.released.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            _ = cut.changed() => return,
        }
    }
}

async fn forward(
    mut client: impl AsyncRead + AsyncWrite + Unpin,
    upstream: (String, u16),
    mut cut: watch::Receiver<u64>,
) {
    let Ok(mut broker) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
        // Dropping both streams: the client sees its connection vanish
        // mid-stream (for TLS: with no close_notify).
        _ = cut.changed() => {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_connections();
    }
}

/// Connects with `config` to a peer that never answers (a black-holed
/// proxy) and checks that the connect fails within about `limit` (the
/// config's `connect_timeout`) with an error containing `expected`, after
/// one attempt, and that the client closed the connection it gave up on.
pub async fn assert_connect_gives_up(
    proxy: &Proxy,
    config: RabbitConfig,
    limit: Duration,
    expected: &str,
) {
    let started = std::time::Instant::now();
    let err = RabbitBus::connect(config).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, BusError::Connection(_)), "{err}");
    let message = err.to_string();
    assert!(message.contains(expected), "{message}");
    assert!(took >= limit && took < limit * 4, "took {took:?}");
    assert_eq!(proxy.held(), 1, "one attempt, the first connection's");
    proxy.wait_all_released().await;
}

impl Proxy {
    /// Waits (up to 5 s) until the client closed every connection the
    /// proxy held, and checks it did.
    pub async fn wait_all_released(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.released() < self.held() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            self.released(),
            self.held(),
            "every abandoned connection was closed by the client"
        );
    }
}

/// A member of consumer `group` on `bus`, bound to event type `ty`.
pub async fn member(bus: &RabbitBus, group: &str, ty: &str) -> Box<dyn Subscription> {
    bus.subscriber()
        .subscribe(SubscribeOptions::new(group).event_type(ty))
        .await
        .unwrap()
}

/// What is in `group`'s parking lot now, oldest first.
pub async fn parking_lot(bus: &RabbitBus, group: &str) -> Vec<DeadLetter> {
    bus.dead_letter_queue(group).list(usize::MAX).await.unwrap()
}

/// What is in `group`'s parking lot once it holds at least `count`
/// messages, or after [`PATIENCE`] (the caller checks the count).
pub async fn parked_at_least(bus: &RabbitBus, group: &str, count: usize) -> Vec<DeadLetter> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let parked = parking_lot(bus, group).await;
        if parked.len() >= count || tokio::time::Instant::now() > deadline {
            return parked;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event of the router tests.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    pub n: u32,
}
tessera_event_bus::event!(Ping => "tessera.test.router_ping.v1");

/// A started router of `group` on `bus` whose handler sends the `n` of
/// every [`Ping`] it gets to the receiver.
pub async fn ping_router(
    bus: &RabbitBus,
    group: String,
) -> (RouterHandle, mpsc::UnboundedReceiver<u32>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router::new(Arc::new(bus.subscriber()), group)
        .handle(move |env: Envelope<Ping>, _ctx: EventContext| {
            // Sent at once: nothing for the handler's future to wait for.
            let _ = tx.send(env.data().n);
            std::future::ready(Ok::<_, HandlerError>(()))
        })
        .start()
        .await
        .unwrap();
    (router, rx)
}
