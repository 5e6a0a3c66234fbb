//! Reading the library's own counters: a small global `metrics` recorder
//! that keeps the counters a run asks for and drops everything else.
//!
//! The inbox counts the deliveries it skips as duplicates in
//! `tessera_inbox_duplicates_total` (label `group`), the relay its failed
//! publishes in `tessera_outbox_publish_failures_total` (label `table`).
//! Each run watches its own group and table, so runs in one process (tests)
//! do not see each other's counts.

use std::sync::{
    Arc, Mutex, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// One counter a run watches: a metric name with one label value.
#[derive(Debug)]
struct Watch {
    name: &'static str,
    label: &'static str,
    value: String,
    count: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Watches(Mutex<Vec<Watch>>);

#[derive(Debug)]
struct WatchRecorder(Arc<Watches>);

/// The installed recorder's watches; `None` when another recorder was
/// installed first (the counts are then unknown, and said so).
fn watches() -> Option<&'static Arc<Watches>> {
    static INSTALLED: OnceLock<Option<Arc<Watches>>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let watches = Arc::new(Watches::default());
            metrics::set_global_recorder(WatchRecorder(Arc::clone(&watches)))
                .ok()
                .map(|()| watches)
        })
        .as_ref()
}

/// A counter that follows `name{label=value}` from now on.
#[derive(Debug, Clone)]
pub(crate) struct Watched(Option<Arc<AtomicU64>>);

impl Watched {
    pub(crate) fn new(name: &'static str, label: &'static str, value: &str) -> Self {
        Self(watches().map(|w| {
            let count = Arc::new(AtomicU64::new(0));
            w.0.lock().expect("watches lock").push(Watch {
                name,
                label,
                value: value.to_owned(),
                count: Arc::clone(&count),
            });
            count
        }))
    }

    /// The count so far, or `None` if it cannot be known.
    pub(crate) fn get(&self) -> Option<u64> {
        self.0.as_ref().map(|c| c.load(Ordering::Relaxed))
    }
}

impl Recorder for WatchRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let watches = self.0.0.lock().expect("watches lock");
        let found = watches.iter().find(|w| {
            key.name() == w.name
                && key
                    .labels()
                    .any(|l| l.key() == w.label && l.value() == w.value)
        });
        match found {
            Some(w) => Counter::from_arc(Arc::clone(&w.count)),
            None => Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_counts_its_label_only() {
        let mine = Watched::new("soak_test_total", "group", "mine");
        metrics::counter!("soak_test_total", "group" => "mine").increment(2);
        metrics::counter!("soak_test_total", "group" => "other").increment(5);
        metrics::counter!("soak_other_total", "group" => "mine").increment(7);
        assert_eq!(mine.get(), Some(2));
    }
}
