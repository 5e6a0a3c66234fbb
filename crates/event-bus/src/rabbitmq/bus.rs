//! [`RabbitBus`]: the publishing and the consuming connection, and the
//! publishers and subscribers made on them.
//!
//! A group's parking lot as a dead-letter queue
//! ([`RabbitBus::dead_letter_queue`]) lives in `dead_letter.rs`.

use std::sync::Arc;

use super::{
    config::RabbitConfig, connection::Connector, dead_letter::RabbitDeadLetters, endpoint,
    publisher::RabbitPublisher, subscriber::RabbitSubscriber,
};
use crate::{Health, HealthStatus, error::BusError};

/// A RabbitMQ event bus: a publishing and a consuming connection, both recovering.
#[derive(Debug, Clone)]
pub struct RabbitBus {
    publishing: Arc<Connector>,
    pub(super) consuming: Arc<Connector>,
}

impl RabbitBus {
    /// Checks the [endpoints](RabbitConfig::endpoints), connects and declares
    /// the exchange; fails if the configuration is invalid or no endpoint can
    /// be reached now.
    pub async fn connect(config: RabbitConfig) -> Result<Self, BusError> {
        let endpoints = endpoint::check(&config)?;
        let config = Arc::new(config);
        let publishing =
            Connector::connect(Arc::clone(&config), endpoints.clone(), 0, "publish").await?;
        let consuming = Connector::connect(config, endpoints, 0, "consume").await?;
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

    /// Up when both connections are (naming the endpoint each uses:
    /// `publish connection to rabbit-1:5672, consume connection to
    /// rabbit-2:5672`), degraded while one reconnects (saying why: the
    /// endpoints' failures when none can be reached), down once closed.
    pub fn health(&self) -> Health {
        let (p, c) = (self.publishing.health(), self.consuming.health());
        if p.is_up() && c.is_up() {
            let details: Vec<String> = [p.detail, c.detail].into_iter().flatten().collect();
            return Health {
                detail: (!details.is_empty()).then(|| details.join(", ")),
                ..Health::up()
            };
        }
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
}
