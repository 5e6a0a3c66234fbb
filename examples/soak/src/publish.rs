//! The publishers: tasks that commit one [`Tick`] per transaction, on a
//! fixed schedule, into the outbox and the `committed` table together.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tessera_event_bus::{Envelope, outbox::Outbox};
use tokio::{sync::watch, task::JoinSet, time::Instant};

use crate::{
    config::SoakConfig,
    db::RunDb,
    event::{SOURCE, Tick, now_us},
};

/// Starts `config.publishers` tasks (at most one per subject): together
/// `config.rate` events a second over `config.subjects` subjects until
/// `config.duration` is over or `stop` turns true. Each task owns the subjects `t, t + tasks, ...`, so it
/// numbers them alone. Each has at most one transaction open, so the tasks
/// bound the rate at `publishers` / the commit latency: PostgreSQL commits
/// many concurrent transactions with one WAL flush, so more tasks reach a
/// higher rate than faster ones could.
///
/// A task that falls behind its schedule commits without pausing until it
/// has caught up, and stops at the end of `duration` all the same: a
/// machine that cannot keep the rate commits fewer events (the summary
/// shows the rate reached), the run does not overrun. A failed transaction is counted in `failures` and skipped
/// (it committed nothing, or, if only the commit's answer was lost, its row
/// in `committed` says so: the summary counts from the table).
pub(crate) fn start(
    db: &RunDb,
    outbox: &Outbox,
    config: &SoakConfig,
    stop: watch::Receiver<bool>,
    failures: Arc<AtomicU64>,
) -> JoinSet<()> {
    let (rate, subjects) = (config.rate, config.subjects);
    let tasks = config.publishers.min(subjects);
    let start = Instant::now();
    let end = start + config.duration;
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let task = Publisher {
            pool: db.pool.clone(),
            insert: format!(
                "INSERT INTO {} (event_id, subject, seq, committed_us) VALUES ($1, $2, $3, $4)",
                db.committed_table()
            ),
            outbox: outbox.clone(),
            subjects: (t..subjects)
                .step_by(tasks)
                .map(|s| format!("s{s}"))
                .collect(),
            // Event k of task t is due at (k * tasks + t) / rate seconds.
            first: start + Duration::from_secs_f64(t as f64 / f64::from(rate)),
            every: Duration::from_secs_f64(tasks as f64 / f64::from(rate)),
            end,
            stop: stop.clone(),
            failures: Arc::clone(&failures),
        };
        set.spawn(task.run());
    }
    set
}

struct Publisher {
    pool: sqlx::PgPool,
    insert: String,
    outbox: Outbox,
    subjects: Vec<String>,
    first: Instant,
    every: Duration,
    end: Instant,
    stop: watch::Receiver<bool>,
    failures: Arc<AtomicU64>,
}

impl Publisher {
    async fn run(mut self) {
        let mut seqs = vec![0_i64; self.subjects.len()];
        let mut k: u32 = 0;
        loop {
            let due = self.first + self.every * k;
            if due >= self.end || Instant::now() >= self.end || *self.stop.borrow() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                _ = self.stop.changed() => return,
            }
            let i = k as usize % self.subjects.len();
            let tick = Tick {
                subject: self.subjects[i].clone(),
                seq: seqs[i] + 1,
                committed_us: now_us(),
            };
            match self.commit(&tick).await {
                Ok(()) => seqs[i] = tick.seq,
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subject = %tick.subject, seq = tick.seq, "publishing transaction failed: {e}");
                }
            }
            k += 1;
        }
    }

    async fn commit(&self, tick: &Tick) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let envelope = Envelope::new(SOURCE, tick.clone());
        let mut tx = self.pool.begin().await?;
        sqlx::query(&self.insert)
            .bind(envelope.id())
            .bind(&tick.subject)
            .bind(tick.seq)
            .bind(tick.committed_us)
            .execute(&mut *tx)
            .await?;
        self.outbox.enqueue(&mut tx, &envelope).await?;
        tx.commit().await?;
        Ok(())
    }
}
