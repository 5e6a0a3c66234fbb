//! Node loss on schedule: kills a random node of the cluster through
//! `scripts/rabbitmq-cluster kill-node N` and starts it again half a period
//! later (`start-node N`), recording each step.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};

use crate::event::now_us;

/// What happened to a node, and when (µs since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// When it happened.
    pub at_us: i64,
    /// The node (1, 2 or 3).
    pub node: u8,
    /// What happened.
    pub kind: NodeEventKind,
}

/// What happened to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEventKind {
    /// Its VM was killed (SIGKILL).
    Killed,
    /// It runs in the cluster again.
    Back,
    /// The script failed; the message says how.
    ScriptFailed(String),
}

impl std::fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.node;
        match &self.kind {
            NodeEventKind::Killed => write!(f, "killed c{n}"),
            NodeEventKind::Back => write!(f, "c{n} back"),
            NodeEventKind::ScriptFailed(why) => write!(f, "c{n}: {why}"),
        }
    }
}

/// The node events of a run, in order; shared with the progress lines.
pub(crate) type NodeLog = Arc<Mutex<Vec<NodeEvent>>>;

/// The cluster script: `SOAK_CLUSTER_SCRIPT` if set, else the repository's.
pub(crate) fn cluster_script() -> PathBuf {
    std::env::var_os("SOAK_CLUSTER_SCRIPT").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../scripts/rabbitmq-cluster"
            ))
        },
        PathBuf::from,
    )
}

/// Kills a random node every `every` until `stop`; a node it killed is
/// always started again before the task ends, stop or not.
pub(crate) fn start(
    script: PathBuf,
    every: Duration,
    log: NodeLog,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let node = rand::random_range(1..=3_u8);
            if !step(&script, "kill-node", node, NodeEventKind::Killed, &log).await {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(every / 2) => {}
                _ = stop.changed() => {}
            }
            // Back into the cluster whatever happens, or the next run finds two nodes.
            step(&script, "start-node", node, NodeEventKind::Back, &log).await;
            if *stop.borrow() {
                return;
            }
        }
    })
}

/// Runs `script command node`; records `done` or the failure.
async fn step(
    script: &PathBuf,
    command: &str,
    node: u8,
    done: NodeEventKind,
    log: &NodeLog,
) -> bool {
    // A kill counts from when it was asked for: recoveries are measured from there.
    let started = now_us();
    let output = tokio::process::Command::new(script)
        .arg(command)
        .arg(node.to_string())
        .kill_on_drop(true)
        .output()
        .await;
    let kind = match output {
        Ok(out) if out.status.success() => done,
        Ok(out) => NodeEventKind::ScriptFailed(format!(
            "{command} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => {
            NodeEventKind::ScriptFailed(format!("cannot run {} {command}: {e}", script.display()))
        }
    };
    let ok = !matches!(kind, NodeEventKind::ScriptFailed(_));
    let at_us = if kind == NodeEventKind::Killed {
        started
    } else {
        now_us()
    };
    log.lock()
        .expect("node log lock")
        .push(NodeEvent { at_us, node, kind });
    ok
}
