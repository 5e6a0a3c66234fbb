//! Metric names and recording, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Install any `metrics` recorder (Prometheus exporter, ...) and these appear:
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `tessera_events_published_total` | counter | `type` |
//! | `tessera_events_delivered_total` | counter | `type`, `group` |
//! | `tessera_events_handled_total` | counter | `type`, `group` |
//! | `tessera_events_retried_total` | counter | `type`, `group` |
//! | `tessera_events_dead_lettered_total` | counter | `type`, `group`, `reason` (`transient`, `permanent`, `undecodable`, `timeout`) |
//! | `tessera_events_unhandled_total` | counter | `type`, `group` |
//! | `tessera_handler_duration_seconds` | histogram | `type`, `group` |
//!
//! ```
//! assert_eq!(tessera_event_bus::metrics::PUBLISHED, "tessera_events_published_total");
//! ```

/// Events published (confirmed by the backend) through an [`EventPublisher`](crate::EventPublisher).
pub const PUBLISHED: &str = "tessera_events_published_total";
/// Deliveries a router received.
pub const DELIVERED: &str = "tessera_events_delivered_total";
/// Deliveries handled successfully (and acked).
pub const HANDLED: &str = "tessera_events_handled_total";
/// Handler retries after a transient error.
pub const RETRIED: &str = "tessera_events_retried_total";
/// Deliveries sent to the dead letters.
pub const DEAD_LETTERED: &str = "tessera_events_dead_lettered_total";
/// Deliveries of an event type no handler is registered for (acked).
pub const UNHANDLED: &str = "tessera_events_unhandled_total";
/// Handler latency in seconds, retries included.
pub const HANDLER_DURATION: &str = "tessera_handler_duration_seconds";

pub(crate) fn published(ty: &'static str) {
    metrics::counter!(PUBLISHED, "type" => ty).increment(1);
}

pub(crate) fn delivered(ty: &str, group: &str) {
    metrics::counter!(DELIVERED, "type" => ty.to_owned(), "group" => group.to_owned()).increment(1);
}

/// The metric handles of one router route, registered when the router
/// starts: recording then costs no allocation per delivery. Install the
/// recorder before starting routers (as with any `metrics` handle, one
/// registered before a recorder exists records nothing).
pub(crate) struct RouteMetrics {
    delivered: metrics::Counter,
    handled: metrics::Counter,
    duration: metrics::Histogram,
}

impl RouteMetrics {
    pub(crate) fn new(ty: &str, group: &str) -> Self {
        let labels = [("type", ty.to_owned()), ("group", group.to_owned())];
        Self {
            delivered: metrics::counter!(DELIVERED, &labels),
            handled: metrics::counter!(HANDLED, &labels),
            duration: metrics::histogram!(HANDLER_DURATION, &labels),
        }
    }

    pub(crate) fn delivered(&self) {
        self.delivered.increment(1);
    }

    pub(crate) fn handled(&self, seconds: f64) {
        self.handled.increment(1);
        self.duration.record(seconds);
    }

    pub(crate) fn duration(&self, seconds: f64) {
        self.duration.record(seconds);
    }
}

pub(crate) fn retried(ty: &str, group: &str) {
    metrics::counter!(RETRIED, "type" => ty.to_owned(), "group" => group.to_owned()).increment(1);
}

pub(crate) fn dead_lettered(ty: &str, group: &str, reason: &'static str) {
    metrics::counter!(
        DEAD_LETTERED,
        "type" => ty.to_owned(),
        "group" => group.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

pub(crate) fn unhandled(ty: &str, group: &str) {
    metrics::counter!(UNHANDLED, "type" => ty.to_owned(), "group" => group.to_owned()).increment(1);
}
