//! [`EventPublisher`]: publishes typed events through any [`Publisher`].
//!
//! It stamps the producer's `source`, encodes with a [`Codec`] (JSON by
//! default) and counts published events in the `tessera_events_published_total`
//! metric.
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use tessera_event_bus::{EventPublisher, SubscribeOptions, Subscriber, memory::MemoryBus};
//!
//! #[derive(Serialize, Deserialize)]
//! struct UserDeleted { user_id: String }
//! tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
//!
//! let bus = MemoryBus::new();
//! let mut sub = bus.subscriber()
//!     .subscribe(SubscribeOptions::new("comments").event_type("com.example.user.deleted.v1"))
//!     .await?;
//! let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! let id = events.publish(UserDeleted { user_id: "u1".into() }).await?;
//!
//! let delivery = sub.next().await?.unwrap();
//! assert_eq!(delivery.event().id(), id);
//! assert_eq!(delivery.event().attributes.source, "/user-service");
//! # Ok::<(), tessera_event_bus::BusError>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use crate::{Codec, Envelope, Event, JsonCodec, Publisher, RawEvent, error::BusError, metrics};

/// Publishes typed events: stamps `source`, encodes, publishes, counts.
#[derive(Debug)]
pub struct EventPublisher<C = JsonCodec> {
    publisher: Arc<dyn Publisher>,
    codec: Arc<C>,
    source: String,
    published: Arc<metrics::PublishedCounters>,
}

impl<C> Clone for EventPublisher<C> {
    fn clone(&self) -> Self {
        Self {
            publisher: Arc::clone(&self.publisher),
            codec: Arc::clone(&self.codec),
            source: self.source.clone(),
            published: Arc::clone(&self.published),
        }
    }
}

impl EventPublisher<JsonCodec> {
    /// A JSON event publisher for the producer named `source` (such as `/user-service`).
    pub fn new(publisher: Arc<dyn Publisher>, source: impl Into<String>) -> Self {
        Self::with_codec(publisher, source, JsonCodec)
    }
}

impl<C: Codec> EventPublisher<C> {
    /// An event publisher with another codec.
    pub fn with_codec(publisher: Arc<dyn Publisher>, source: impl Into<String>, codec: C) -> Self {
        Self {
            publisher,
            codec: Arc::new(codec),
            source: source.into(),
            published: Arc::default(),
        }
    }

    /// The producer's `source`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The underlying raw publisher.
    pub fn inner(&self) -> &Arc<dyn Publisher> {
        &self.publisher
    }

    /// A new envelope for `event` with this publisher's source.
    pub fn envelope<E: Event>(&self, event: E) -> Envelope<E> {
        Envelope::new(self.source.clone(), event)
    }

    /// Publishes `event` in a new envelope; returns the event id once the
    /// backend durably accepted it.
    pub async fn publish<E: Event>(&self, event: E) -> Result<String, BusError> {
        let envelope = self.envelope(event);
        let id = envelope.id().to_owned();
        self.publish_raw::<E>(envelope.into_raw(&*self.codec)?)
            .await?;
        Ok(id)
    }

    /// Publishes a prepared envelope (for example a handler's
    /// [`follow_up`](crate::router::EventContext::follow_up)).
    pub async fn publish_envelope<E: Event>(&self, envelope: &Envelope<E>) -> Result<(), BusError> {
        self.publish_raw::<E>(envelope.encode(&*self.codec)?).await
    }

    async fn publish_raw<E: Event>(&self, raw: RawEvent) -> Result<(), BusError> {
        raw.attributes.validate()?;
        #[cfg(feature = "otel")]
        crate::otel::publish::publish(&*self.publisher, raw, crate::otel::publish::Parent::Current)
            .await?;
        #[cfg(not(feature = "otel"))]
        self.publisher.publish(raw).await?;
        self.published.increment(E::TYPE);
        Ok(())
    }
}
