//! [`Summary`]: what a run proved, and how it reads.

use std::{fmt, time::Duration};

use crate::nodes::NodeEvent;

/// How recovery after a node loss is measured (printed with the figure).
pub const RECOVERY_DEFINITION: &str = "the longest an event committed between 10 s before \
the kill and 1 s after it waited to be handled, counted from the kill (or from its commit, if \
later): the events in flight when the node died, and the first second of traffic after it";

/// How the wait for the backlog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every committed event was handled this long after publishing stopped.
    Done(Duration),
    /// Events were still unhandled when the drain timeout was up.
    TimedOut(Duration),
}

/// Commit→handled latencies: from the publisher opening the event's
/// transaction to the consumer's first handling of it (its row in
/// `handled`, written just before the inbox's transaction commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Longest.
    pub max: Duration,
}

/// Recovery after one node kill (see [`RECOVERY_DEFINITION`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The kill.
    pub kill: NodeEvent,
    /// How long recovery took; `None` when some of the events never arrived.
    pub took: Option<Duration>,
    /// The events committed in the measured window.
    pub events: i64,
}

/// The figures of a finished run, counted in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The run's name (its schema, exchange and queue prefix derive from it).
    pub run: String,
    /// The rate asked for (events a second).
    pub rate: u32,
    /// How long the publishers ran.
    pub published_for: Duration,
    /// Rows in `committed`: events whose publishing transaction committed.
    pub committed: i64,
    /// Committed events with a row in `handled`.
    pub handled: i64,
    /// Committed event ids with no row in `handled`: must be 0.
    pub lost: i64,
    /// Rows in `handled` beyond the first of their event (an effect the
    /// inbox let through twice): must be 0.
    pub double_effects: i64,
    /// Handled event ids that were never committed: must be 0.
    pub unknown_handled: i64,
    /// Deliveries the inbox skipped as already processed
    /// (`tessera_inbox_duplicates_total` of the run's group); `None` when
    /// another metrics recorder was installed first.
    pub duplicates_suppressed: Option<u64>,
    /// Publishes the relays retried (`tessera_outbox_publish_failures_total`).
    pub relay_publish_failures: Option<u64>,
    /// Publisher transactions that failed (and committed nothing).
    pub publisher_failures: u64,
    /// Commit→handled latencies; `None` when nothing was handled.
    pub latency: Option<Latency>,
    /// What happened to nodes during the run.
    pub node_events: Vec<NodeEvent>,
    /// Recovery after each kill.
    pub recoveries: Vec<Recovery>,
    /// How the wait for the backlog ended.
    pub drain: Drain,
}

impl Summary {
    /// Nothing lost, nothing applied twice, the backlog drained, and
    /// something was committed at all.
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }

    /// Why the run did not pass, if it did not.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.committed == 0 {
            problems.push("nothing was committed".to_owned());
        }
        if self.lost > 0 {
            problems.push(format!("{} events lost", self.lost));
        }
        if self.double_effects > 0 {
            problems.push(format!("{} effects applied twice", self.double_effects));
        }
        if self.unknown_handled > 0 {
            problems.push(format!(
                "{} handled events were never committed",
                self.unknown_handled
            ));
        }
        if let Drain::TimedOut(after) = self.drain {
            problems.push(format!("the backlog did not drain within {after:?}"));
        }
        problems
    }

    /// The longest recovery, or `Err` with a kill that was never recovered from;
    /// `None` when no node was killed.
    pub fn longest_recovery(&self) -> Option<Result<&Recovery, &Recovery>> {
        if let Some(never) = self.recoveries.iter().find(|r| r.took.is_none()) {
            return Some(Err(never));
        }
        self.recoveries.iter().max_by_key(|r| r.took).map(Ok)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn known(count: Option<u64>) -> String {
    count.map_or_else(
        || "unknown (another metrics recorder is installed)".to_owned(),
        |n| n.to_string(),
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "soak summary ({}, published for {:.1} s)",
            self.run,
            self.published_for.as_secs_f64()
        )?;
        writeln!(f, "  events committed        {}", self.committed)?;
        let reached = self.committed as f64 / self.published_for.as_secs_f64().max(1e-3);
        let behind = if reached < f64::from(self.rate) * 0.95 {
            "  (behind schedule: this machine did not keep the rate)"
        } else {
            ""
        };
        writeln!(
            f,
            "  commit rate             {reached:.0}/s of {}/s asked{behind}",
            self.rate
        )?;
        writeln!(f, "  events handled          {}", self.handled)?;
        writeln!(
            f,
            "  lost                    {}  (committed ids never handled, counted in SQL; must be 0)",
            self.lost
        )?;
        writeln!(
            f,
            "  effects applied twice   {}  (must be 0)",
            self.double_effects
        )?;
        if self.unknown_handled > 0 {
            writeln!(f, "  handled, never committed {}", self.unknown_handled)?;
        }
        writeln!(
            f,
            "  duplicates suppressed   {}  (redeliveries the inbox skipped)",
            known(self.duplicates_suppressed)
        )?;
        writeln!(
            f,
            "  relay publish retries   {}",
            known(self.relay_publish_failures)
        )?;
        writeln!(
            f,
            "  failed transactions     {}  (publisher side; they committed nothing)",
            self.publisher_failures
        )?;
        match self.latency {
            Some(l) => writeln!(
                f,
                "  latency commit→handled  p50 {}  p99 {}  max {}",
                ms(l.p50),
                ms(l.p99),
                ms(l.max)
            )?,
            None => writeln!(f, "  latency commit→handled  n/a (nothing handled)")?,
        }
        match self.longest_recovery() {
            None => writeln!(f, "  longest recovery        n/a (no node was killed)")?,
            Some(Ok(r)) => writeln!(
                f,
                "  longest recovery        {} (after {}; kills: {})",
                ms(r.took.unwrap_or_default()),
                r.kill,
                self.recoveries.len()
            )?,
            Some(Err(r)) => writeln!(
                f,
                "  longest recovery        never: events around \"{}\" were not all handled",
                r.kill
            )?,
        }
        if !self.recoveries.is_empty() {
            writeln!(f, "    recovery: {RECOVERY_DEFINITION}")?;
        }
        if !self.node_events.is_empty() {
            let events: Vec<_> = self.node_events.iter().map(ToString::to_string).collect();
            writeln!(f, "  node events             {}", events.join(", "))?;
        }
        match self.drain {
            Drain::Done(d) => writeln!(
                f,
                "  drain                   done {:.1} s after publishing stopped",
                d.as_secs_f64()
            )?,
            Drain::TimedOut(d) => writeln!(
                f,
                "  drain                   TIMED OUT after {:.1} s",
                d.as_secs_f64()
            )?,
        }
        match self.problems().as_slice() {
            [] => write!(f, "  result                  PASS"),
            problems => write!(f, "  result                  FAIL: {}", problems.join("; ")),
        }
    }
}
