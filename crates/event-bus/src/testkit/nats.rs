//! The NATS JetStream backend under the kit (features `testkit` and `nats`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::TryStreamExt;

use super::{Capabilities, TestBackend, relay::TcpRelay};
use crate::{
    DeadLetterQueue, Publisher, Subscriber,
    nats::{DEFAULT_URL, NatsBus, NatsConfig},
};

/// The server URL tests use: `NATS_URL`, or the local default.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// The name every test stream starts with (stale ones are removed).
const TEST_STREAM_PREFIX: &str = "TESSERA_TEST_";

/// A NATS bus on streams, subjects and consumers of its own (so cases run
/// side by side on one server), connected through a [`TcpRelay`] so that
/// [`break_connections`](TestBackend::break_connections) cuts its connection
/// and nobody else's.
#[derive(Debug, Clone)]
pub struct NatsTestBackend {
    bus: NatsBus,
    relay: TcpRelay,
    name: String,
}

/// The URL with its host and port replaced by `addr` (credentials kept).
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
    let (userinfo, _) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, rest),
    };
    match userinfo {
        Some(userinfo) => format!("{scheme}://{userinfo}@{addr}"),
        None => format!("{scheme}://{addr}"),
    }
}

/// The socket address of a `nats://host:port` URL.
async fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.trim_end_matches('/');
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:4222")
    };
    tokio::net::lookup_host(host.as_str())
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("NATS_URL host {host} resolves"))
}

impl NatsTestBackend {
    /// Connects to [`nats_url`] with unique streams; panics when the server is unreachable.
    pub async fn new() -> Self {
        Self::with_config(|c| c).await
    }

    /// Like [`new`](Self::new), with more settings.
    pub async fn with_config(configure: impl FnOnce(NatsConfig) -> NatsConfig) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("tessera-test-{id}");
        let url = nats_url();
        let relay = TcpRelay::start(upstream(&url).await).await;
        let config = NatsConfig::new(through(&url, relay.addr()))
            .stream(format!("{TEST_STREAM_PREFIX}{id}"))
            .subject_prefix(format!("tessera.test.{id}"))
            .parking_prefix(format!("tessera.test-parking.{id}"))
            .connection_name(name.clone())
            .ignore_discovered_servers()
            .ack_wait(Duration::from_secs(5))
            .duplicate_window(Duration::from_secs(60))
            .max_age(Duration::from_secs(600))
            .reconnect_delays(Duration::from_millis(50), Duration::from_secs(1));
        let bus = NatsBus::connect(configure(config))
            .await
            .expect("NATS with JetStream at NATS_URL is reachable");
        remove_stale_test_streams(&bus).await;
        Self { bus, relay, name }
    }

    /// The bus.
    pub fn bus(&self) -> &NatsBus {
        &self.bus
    }

    /// The name of this backend's connection (and the start of its stream's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The relay the bus connects through.
    pub fn relay(&self) -> &TcpRelay {
        &self.relay
    }
}

/// Deletes test streams older than an hour (left by earlier runs).
async fn remove_stale_test_streams(bus: &NatsBus) {
    let js = async_nats::jetstream::new(bus.client().clone());
    let Ok(streams) = js.streams().try_collect::<Vec<_>>().await else {
        return;
    };
    let old = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    for info in streams {
        if info.config.name.starts_with(TEST_STREAM_PREFIX) && info.created < old {
            let _ = js.delete_stream(&info.config.name).await;
        }
    }
}

#[async_trait]
impl TestBackend for NatsTestBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
            .with_ordering_per_subject()
            .with_reconnect()
    }

    async fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::new(self.bus.publisher())
    }

    async fn subscriber(&self) -> Arc<dyn Subscriber> {
        Arc::new(self.bus.subscriber())
    }

    fn dead_letter_queue(&self, group: &str) -> Arc<dyn DeadLetterQueue> {
        Arc::new(self.bus.dead_letter_queue(group))
    }

    /// Cuts the bus's connection to the server (through the relay).
    async fn break_connections(&self) {
        self.relay.cut();
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn quiet_period(&self) -> Duration {
        Duration::from_millis(300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_url_keeps_scheme_and_credentials() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(through("nats://127.0.0.1:4222", addr), "nats://127.0.0.1:9");
        assert_eq!(
            through("nats://u:p@nats:4222", addr),
            "nats://u:p@127.0.0.1:9"
        );
        assert_eq!(through("127.0.0.1:4222", addr), "nats://127.0.0.1:9");
    }
}
