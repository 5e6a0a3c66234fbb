//! A soak run of Tessera's delivery chain: publishers commit events through
//! the transactional outbox at a fixed rate, a relay per replica publishes
//! them to RabbitMQ (quorum queues), and a consumer per replica (router +
//! inbox) records each handled event in the inbox's transaction. At the end
//! the database says whether anything committed was never handled.
//!
//! ```text
//! publishers ──tx: committed row + outbox row──▶ PostgreSQL
//!                                                  │ OutboxRelay × replicas (own connections)
//!                                                  ▼
//!                                   RabbitMQ exchange soak-<id>.events
//!                                                  │ quorum queue of the group soak-<id>
//!                                                  ▼
//!            Router + Inbox × replicas ──tx: inbox row + handled row──▶ PostgreSQL
//! ```
//!
//! - **lost** = ids in `committed` with no row in `handled`, counted in SQL
//!   after the backlog drained. It must be 0.
//! - **duplicates suppressed** = the inbox's own count of redeliveries it
//!   skipped (`tessera_inbox_duplicates_total` for the run's group).
//! - **latency** = first handling time minus the time the publisher opened
//!   the event's transaction (both on this process's clock).
//! - **recovery** after a node kill: see [`RECOVERY_DEFINITION`].
//!
//! Each run has its own schema (`soak_<id>`, dropped at the end), exchange
//! and queue prefix (`soak-<id>.`, removed by the broker a minute after the
//! run through `temporary_topology`). The binary is a thin wrapper around
//! [`run_until`]; the tests call [`run`].

mod config;
mod counters;
mod db;
mod error;
mod event;
mod nodes;
mod progress;
mod publish;
mod replica;
mod summary;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tessera_event_bus::{inbox::METRIC_DUPLICATES, outbox::METRIC_PUBLISH_FAILURES};
use tokio::sync::watch;

pub use self::{
    config::{CLUSTER_URLS, Command, LOCAL_DATABASE, SoakConfig, USAGE},
    error::{SoakError, UsageError},
    event::{SOURCE, Tick},
    nodes::{NodeEvent, NodeEventKind},
    summary::{Drain, Latency, RECOVERY_DEFINITION, Recovery, Summary},
};
use self::{
    counters::Watched,
    db::RunDb,
    event::now_us,
    progress::Progress,
    replica::{Replica, Topology},
};

/// How often the loops look at the clock, the publishers and the node log.
const TICK: Duration = Duration::from_millis(250);

/// Runs the soak as `config` says; see [`run_until`].
pub async fn run(config: &SoakConfig) -> Result<Summary, SoakError> {
    run_until(config, std::future::pending()).await
}

/// Runs the soak until its duration is over or `interrupted` completes
/// (publishing then stops early), waits for the backlog (at most
/// `drain_timeout`), and counts. `Err` means the run could not run (no
/// database, no broker); a run that lost events is an `Ok` summary that did
/// not [pass](Summary::passed).
pub async fn run_until(
    config: &SoakConfig,
    interrupted: impl Future<Output = ()> + Send,
) -> Result<Summary, SoakError> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let connections = config.publishers.min(config.subjects)
        + config.relays * (replica::CONSUMER_CONCURRENCY + 3)
        + 2;
    let db = RunDb::create(
        &config.database,
        &format!("soak_{id}"),
        u32::try_from(connections).unwrap_or(u32::MAX),
    )
    .await?;
    let result = soak(config, &db, &id, interrupted).await;
    if let Err(e) = db.drop_schema().await {
        tracing::warn!("cleanup: {e}");
    }
    result
}

async fn soak(
    config: &SoakConfig,
    db: &RunDb,
    id: &str,
    interrupted: impl Future<Output = ()> + Send,
) -> Result<Summary, SoakError> {
    let outbox = db.outbox();
    outbox
        .migrate(&db.pool)
        .await
        .map_err(|source| SoakError::Outbox {
            what: "cannot create the outbox table".to_owned(),
            source,
        })?;
    let inbox = db.inbox();
    inbox.migrate().await.map_err(|source| SoakError::Outbox {
        what: "cannot create the inbox table".to_owned(),
        source,
    })?;
    let topology = Topology {
        urls: config.urls.clone(),
        exchange: format!("soak-{id}.events"),
        queue_prefix: format!("soak-{id}."),
        group: format!("soak-{id}"),
    };
    let duplicates = Watched::new(METRIC_DUPLICATES, "group", &topology.group);
    let relay_failures = Watched::new(METRIC_PUBLISH_FAILURES, "table", &outbox.table().label());

    let mut replicas = Vec::with_capacity(config.relays);
    for n in 1..=config.relays {
        match Replica::start(n, &topology, db, &outbox, &inbox).await {
            Ok(replica) => replicas.push(replica),
            Err(e) => {
                for replica in replicas {
                    replica.shutdown().await;
                }
                return Err(e);
            }
        }
    }

    let started = Instant::now();
    let node_log = nodes::NodeLog::default();
    let mut progress = Progress::new(
        started,
        now_us(),
        config.progress_every,
        duplicates.clone(),
        Arc::clone(&node_log),
    );
    progress.note(&format!(
        "soak-{id}: {} events/s for {:.0} s over {} subjects, {} replicas{}",
        config.rate,
        config.duration.as_secs_f64(),
        config.subjects,
        config.relays,
        config.kill_every.map_or_else(String::new, |d| format!(
            ", a node killed every {:.0} s",
            d.as_secs_f64()
        ))
    ));
    let (stop, stopped) = watch::channel(false);
    let killer = config.kill_every.map(|every| {
        nodes::start(
            nodes::cluster_script(),
            every,
            Arc::clone(&node_log),
            stopped.clone(),
        )
    });
    let publisher_failures = Arc::new(AtomicU64::new(0));
    let mut publishers = publish::start(
        db,
        &outbox,
        config,
        stopped,
        Arc::clone(&publisher_failures),
    );

    // Publishing.
    let mut interrupted = std::pin::pin!(interrupted);
    loop {
        tokio::select! {
            joined = publishers.join_next() => match joined {
                None => break,
                Some(Err(e)) => tracing::error!("a publisher task failed: {e}"),
                Some(Ok(())) => {}
            },
            () = &mut interrupted, if !*stop.borrow() => {
                progress.note("interrupted: publishing stops");
                let _ = stop.send(true);
            }
            () = tokio::time::sleep(TICK) => {}
        }
        progress.tick(db, &replicas).await;
    }
    let published_for = started.elapsed();
    let _ = stop.send(true);

    // Draining: until every committed event is handled, or the timeout.
    progress.note("publishing done; draining the backlog");
    let drain_started = Instant::now();
    let drain = loop {
        let counts = db.counts().await?;
        if counts.handled >= counts.committed {
            break Drain::Done(drain_started.elapsed());
        }
        if drain_started.elapsed() >= config.drain_timeout {
            break Drain::TimedOut(drain_started.elapsed());
        }
        tokio::time::sleep(TICK).await;
        progress.tick(db, &replicas).await;
    };
    if let Some(killer) = killer {
        // It starts the node it killed last, if that one is down.
        if let Err(e) = killer.await {
            tracing::error!("the node killer failed: {e}");
        }
        progress.nodes();
    }
    if progress.stale()
        && let Err(e) = progress.line(db, &replicas).await
    {
        progress.note(&format!("progress: {e}"));
    }
    for replica in replicas {
        replica.shutdown().await;
    }

    // Counting, once nothing writes any more.
    let counts = db.counts().await?;
    let node_events = node_log.lock().expect("node log lock").clone();
    let mut recoveries = Vec::new();
    for kill in node_events
        .iter()
        .filter(|e| e.kind == NodeEventKind::Killed)
    {
        let window = db
            .window(kill.at_us - 10_000_000, kill.at_us + 1_000_000, kill.at_us)
            .await?;
        let took = match window.longest_wait_us {
            Some(wait) if window.handled == window.events => {
                Some(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
            }
            None if window.events == 0 => Some(Duration::ZERO),
            _ => None,
        };
        recoveries.push(Recovery {
            kill: kill.clone(),
            took,
            events: window.events,
        });
    }
    let micros = |us: f64| Duration::from_micros(us.max(0.0) as u64);
    Ok(Summary {
        run: format!("soak-{id}"),
        rate: config.rate,
        published_for,
        committed: counts.committed,
        handled: counts.handled,
        lost: db.lost().await?,
        double_effects: db.double_effects().await?,
        unknown_handled: db.strangers().await?,
        duplicates_suppressed: duplicates.get(),
        relay_publish_failures: relay_failures.get(),
        publisher_failures: publisher_failures.load(Ordering::Relaxed),
        latency: db.latencies().await?.map(|l| Latency {
            p50: micros(l.p50),
            p99: micros(l.p99),
            max: micros(l.max),
        }),
        node_events,
        recoveries,
        drain,
    })
}
