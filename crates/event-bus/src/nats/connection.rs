//! [`Connection`]: the NATS client (which reconnects on its own, with the
//! configured backoff), its JetStream context with the publish window, the
//! streams made sure of at start, and the bus's health and closed state.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{ConnectOptions, Event, connection::State, jetstream};
use tokio::sync::watch;

use super::{config::NatsConfig, config::redact, stream};
use crate::{Health, error::BusError};

/// One NATS connection and what the bus keeps beside it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) config: Arc<NatsConfig>,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    /// The last thing the client told about the connection (for health).
    last_event: Arc<std::sync::Mutex<Option<String>>>,
    closed: AtomicBool,
    closing: watch::Sender<bool>,
}

/// The reconnect delay for the `attempt`th attempt: from the minimum,
/// doubling up to the maximum.
fn reconnect_delay(config: &NatsConfig, attempt: usize) -> Duration {
    let factor = 1u32 << attempt.min(16);
    config
        .reconnect_min_delay
        .saturating_mul(factor)
        .min(config.reconnect_max_delay)
}

impl Connection {
    /// Connects, then creates or checks the streams.
    pub(crate) async fn connect(config: NatsConfig) -> Result<Arc<Self>, BusError> {
        if config.urls.is_empty() {
            return Err(BusError::Connection(
                "no nats server url is configured".into(),
            ));
        }
        let config = Arc::new(config);
        let last_event = Arc::new(std::sync::Mutex::new(None));
        let mut options = ConnectOptions::new()
            .connection_timeout(config.connect_timeout)
            .request_timeout(Some(config.request_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback({
                let config = Arc::clone(&config);
                move |attempt| reconnect_delay(&config, attempt)
            })
            .event_callback({
                let last_event = Arc::clone(&last_event);
                move |event| {
                    let last_event = Arc::clone(&last_event);
                    async move {
                        match &event {
                            Event::Connected => tracing::info!("nats connection up"),
                            other => tracing::warn!(event = %other, "nats connection event"),
                        }
                        *last_event
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(event.to_string());
                    }
                }
            });
        if let Some(name) = &config.connection_name {
            options = options.name(name);
        }
        if config.ignore_discovered_servers {
            options = options.ignore_discovered_servers();
        }
        let mut addrs = Vec::with_capacity(config.urls.len());
        for (i, url) in config.urls.iter().enumerate() {
            let addr: async_nats::ServerAddr = url.parse().map_err(|e| {
                BusError::Connection(
                    format!("nats url #{} ({}) is not valid: {e}", i + 1, redact(url)).into(),
                )
            })?;
            addrs.push(addr);
        }
        let client = options.connect(addrs).await.map_err(|e| {
            let urls: Vec<String> = config.urls.iter().map(|u| redact(u)).collect();
            BusError::Connection(format!("cannot connect to nats at {urls:?}: {e}").into())
        })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(config.publish_window)
            .backpressure_on_inflight(true)
            .build(client.clone());
        stream::ensure(&js, &config).await?;
        Ok(Arc::new(Self {
            config,
            client,
            js,
            last_event,
            closed: AtomicBool::new(false),
            closing: watch::channel(false).0,
        }))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once the bus is closed.
    pub(crate) async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Up while connected, degraded while the client reconnects, down once closed.
    pub(crate) fn health(&self) -> Health {
        if self.is_closed() {
            return Health::down("nats connection closed");
        }
        match self.client.connection_state() {
            State::Connected => Health::up(),
            State::Pending | State::Disconnected => {
                let last = self
                    .last_event
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                Health::degraded(match last {
                    Some(event) => format!("nats reconnecting (last: {event})"),
                    None => "nats reconnecting".to_owned(),
                })
            }
        }
    }

    /// Drains the client: pending publishes and acks go out, then it closes. Idempotent.
    pub(crate) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.closing.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.flush()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.drain()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_maximum() {
        let config = NatsConfig::new("nats://x")
            .reconnect_delays(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(reconnect_delay(&config, 0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(&config, 2), Duration::from_millis(400));
        assert_eq!(reconnect_delay(&config, 10), Duration::from_secs(1));
        assert_eq!(reconnect_delay(&config, usize::MAX), Duration::from_secs(1));
    }
}
