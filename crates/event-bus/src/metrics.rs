//! Metric names and recording, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Install any `metrics` recorder (Prometheus exporter, ...) before
//! publishing and starting routers, and these appear (hot paths keep metric
//! handles, registered at a router's start and at an
//! [`EventPublisher`](crate::EventPublisher)'s first publish of each type, and
//! a handle registered before a recorder exists records nothing):
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

/// The `tessera_events_published_total` handles of one
/// [`EventPublisher`](crate::EventPublisher) (and its clones), registered at
/// its first publish of each type: counting then costs no allocation and no
/// registry lookup per event.
#[derive(Debug, Default)]
pub(crate) struct PublishedCounters {
    by_type: std::sync::RwLock<Vec<(&'static str, metrics::Counter)>>,
}

impl PublishedCounters {
    pub(crate) fn increment(&self, ty: &'static str) {
        let read = |by_type: &[(&'static str, metrics::Counter)]| {
            by_type
                .iter()
                .find(|(t, _)| *t == ty)
                .map(|(_, counter)| counter.increment(1))
                .is_some()
        };
        {
            let by_type = self
                .by_type
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if read(&by_type) {
                return;
            }
        }
        let mut by_type = self
            .by_type
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !read(&by_type) {
            let counter = metrics::counter!(PUBLISHED, "type" => ty);
            counter.increment(1);
            by_type.push((ty, counter));
        }
    }
}

pub(crate) fn delivered(ty: &str, group: &str) {
    metrics::counter!(DELIVERED, "type" => ty.to_owned(), "group" => group.to_owned()).increment(1);
}

/// The metric handles of one router route, registered when the router
/// starts: recording then costs no allocation per delivery. Install the
/// recorder before starting routers and publishing (as with any `metrics`
/// handle, one registered before a recorder exists records nothing).
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
