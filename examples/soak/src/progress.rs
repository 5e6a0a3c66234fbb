//! The progress lines a run writes to stderr while it runs: counts and
//! rates every few seconds, node events as they happen.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use tessera_event_bus::HealthStatus;

use crate::{counters::Watched, db::RunDb, error::SoakError, nodes::NodeLog, replica::Replica};

/// Writes progress lines; remembers what the last one showed.
#[derive(Debug)]
pub(crate) struct Progress {
    started: Instant,
    started_us: i64,
    every: Duration,
    next_line: Instant,
    last: Option<(Instant, i64, i64)>,
    duplicates: Watched,
    node_log: NodeLog,
    nodes_shown: usize,
}

fn say(line: &str) {
    // Progress is best effort: a closed stderr must not end the run.
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn stamp(seconds: f64) -> String {
    format!("[{seconds:>7.1}s]")
}

impl Progress {
    /// Lines every `every` from `started` on, with the inbox's `duplicates`
    /// and the events of `node_log`.
    pub(crate) fn new(
        started: Instant,
        started_us: i64,
        every: Duration,
        duplicates: Watched,
        node_log: NodeLog,
    ) -> Self {
        Self {
            started,
            started_us,
            every,
            next_line: started + every,
            last: None,
            duplicates,
            node_log,
            nodes_shown: 0,
        }
    }

    /// Node events as they come, and a progress line when one is due.
    pub(crate) async fn tick(&mut self, db: &RunDb, replicas: &[Replica]) {
        self.nodes();
        if Instant::now() >= self.next_line {
            self.next_line += self.every;
            if let Err(e) = self.line(db, replicas).await {
                self.note(&format!("progress: {e}"));
            }
        }
    }

    /// A line of its own, stamped with the time since the start.
    pub(crate) fn note(&self, what: &str) {
        say(&format!(
            "{} {what}",
            stamp(self.started.elapsed().as_secs_f64())
        ));
    }

    /// Writes the node events not shown yet, stamped with when they happened.
    pub(crate) fn nodes(&mut self) {
        let log = self.node_log.lock().expect("node log lock");
        for event in &log[self.nodes_shown..] {
            let at = (event.at_us - self.started_us) as f64 / 1e6;
            say(&format!("{} {event}", stamp(at)));
        }
        self.nodes_shown = log.len();
    }

    /// Whether the last line is older than a second (or there was none).
    pub(crate) fn stale(&self) -> bool {
        self.last
            .is_none_or(|(at, _, _)| at.elapsed() >= std::time::Duration::from_secs(1))
    }

    /// Writes a line: counts, rates since the last line, lag, duplicates, bus health.
    pub(crate) async fn line(&mut self, db: &RunDb, replicas: &[Replica]) -> Result<(), SoakError> {
        let counts = db.counts().await?;
        let now = Instant::now();
        let (since, committed_before, handled_before) = self.last.unwrap_or((self.started, 0, 0));
        let dt = now.duration_since(since).as_secs_f64().max(1e-3);
        self.last = Some((now, counts.committed, counts.handled));
        let troubled: Vec<String> = replicas
            .iter()
            .filter_map(|r| {
                let health = r.health();
                (health.status != HealthStatus::Up).then(|| {
                    let detail = health.detail.unwrap_or_default();
                    let detail: String = detail.chars().take(60).collect();
                    format!("{} {:?}: {detail}", r.name, health.status)
                })
            })
            .collect();
        let buses = if troubled.is_empty() {
            format!("buses up {}/{}", replicas.len(), replicas.len())
        } else {
            format!(
                "buses up {}/{} ({})",
                replicas.len() - troubled.len(),
                replicas.len(),
                troubled.join("; ")
            )
        };
        self.note(&format!(
            "committed {} ({:.0}/s)  handled {} ({:.0}/s)  lag {}  duplicates {}  {buses}",
            counts.committed,
            (counts.committed - committed_before) as f64 / dt,
            counts.handled,
            (counts.handled - handled_before) as f64 / dt,
            counts.committed - counts.handled,
            self.duplicates
                .get()
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
        ));
        Ok(())
    }
}
