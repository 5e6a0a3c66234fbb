//! The RabbitMQ backend under the kit (features `testkit` and `rabbitmq`).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{Capabilities, TestBackend};
use crate::{
    DeadLetterQueue, Publisher, Subscriber,
    rabbitmq::{QueueType, RabbitBus, RabbitConfig},
};

/// The broker URL tests use: `AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A RabbitMQ bus on its own exchange, with a temporary topology the broker
/// removes after the test, and connections named so that
/// [`break_connections`](TestBackend::break_connections) closes only them.
#[derive(Debug, Clone)]
pub struct RabbitTestBackend {
    bus: RabbitBus,
    name: String,
}

impl RabbitTestBackend {
    /// Connects to [`amqp_url`] with a unique exchange; panics when the broker is unreachable.
    pub async fn new() -> Self {
        Self::with_config(|c| c).await
    }

    /// Like [`new`](Self::new), with quorum queues for every group (delivery
    /// limit 20): the group's queue, its retry queues and its parking lot.
    pub async fn quorum() -> Self {
        Self::with_config(|c| c.queue_type(QueueType::Quorum { delivery_limit: 20 })).await
    }

    /// Like [`new`](Self::new), with more settings.
    pub async fn with_config(configure: impl FnOnce(RabbitConfig) -> RabbitConfig) -> Self {
        let name = format!("tessera-test-{}", uuid::Uuid::new_v4().simple());
        let config = RabbitConfig::new(amqp_url())
            .exchange(format!("{name}.events"))
            .connection_name(name.clone())
            .temporary_topology(Duration::from_secs(60))
            .reconnect_delays(Duration::from_millis(50), Duration::from_secs(1));
        let bus = RabbitBus::connect(configure(config))
            .await
            .expect("RabbitMQ at AMQP_URL is reachable");
        Self { bus, name }
    }

    /// The bus.
    pub fn bus(&self) -> &RabbitBus {
        &self.bus
    }

    /// Force-closes this backend's connections on the broker with `rabbitmqctl`.
    pub async fn force_close_connections(&self) {
        force_close_connections(&self.name).await;
    }
}

/// Force-closes the broker connections whose client properties contain
/// `name` (normally part of a [`RabbitConfig::connection_name`]), each with
/// `rabbitmqctl close_connection <pid> "test"`, as a network failure or an
/// operator would; returns how many were closed.
///
/// Only those connections: other suites sharing the broker are left alone,
/// so `name` should be unique to the test. Needs `rabbitmqctl` on the PATH,
/// talking to the broker of [`amqp_url`].
///
/// # Panics
///
/// When no connection matches or `rabbitmqctl` fails.
pub async fn force_close_connections(name: &str) -> usize {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || force_close(&name))
        .await
        .expect("rabbitmqctl task")
}

fn force_close(name: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--quiet",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs");
    let listing = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(name))
        .filter_map(|line| line.split('\t').next())
        .collect();
    assert!(!pids.is_empty(), "no connection named {name} on the broker");
    let closed = pids.len();
    for pid in pids {
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test"])
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            status.status.success(),
            "rabbitmqctl close_connection failed"
        );
    }
    closed
}

#[async_trait]
impl TestBackend for RabbitTestBackend {
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

    async fn break_connections(&self) {
        self.force_close_connections().await;
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn quiet_period(&self) -> Duration {
        Duration::from_millis(300)
    }
}
