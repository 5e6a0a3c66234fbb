//! [`RabbitCluster`]: drives the 3-node RabbitMQ cluster of the repository's
//! `scripts/rabbitmq-cluster` from a test: its URLs, which node leads a
//! queue, which node a bus uses, and node loss (kill, graceful stop, start).

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use tokio::sync::{Mutex, MutexGuard};

/// Tests that stop nodes take turns: two at once could take the cluster
/// below its majority.
static NODES: Mutex<()> = Mutex::const_new(());

/// The cluster of `scripts/rabbitmq-cluster` (`tessera-c1@localhost` to
/// `tessera-c3@localhost`, AMQP on 127.0.0.1:5681-5683), which must be
/// running (`scripts/rabbitmq-cluster start`).
///
/// The script is `TESSERA_CLUSTER_SCRIPT`, else the one in this crate's
/// repository; the URLs are `AMQP_CLUSTER_URLS` (comma-separated), else the
/// script's. Needs `rabbitmqctl` on the PATH. Every method panics when the
/// script or `rabbitmqctl` fails: this is test support.
#[derive(Debug, Clone)]
pub struct RabbitCluster {
    script: PathBuf,
}

impl Default for RabbitCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl RabbitCluster {
    /// The cluster as the environment describes it.
    pub fn new() -> Self {
        let script = std::env::var_os("TESSERA_CLUSTER_SCRIPT").map_or_else(
            || {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../scripts/rabbitmq-cluster"
                ))
            },
            PathBuf::from,
        );
        Self { script }
    }

    /// The nodes' AMQP URLs, comma-separated, as `RabbitConfig::new` takes them.
    pub fn urls(&self) -> String {
        std::env::var("AMQP_CLUSTER_URLS").unwrap_or_else(|_| {
            (1..=3)
                .map(|n| format!("amqp://guest:guest@127.0.0.1:568{n}/%2f"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// The URLs starting with node `first` (1..=3), so that a bus connects
    /// to that node first.
    pub fn urls_from(&self, first: u32) -> Vec<String> {
        let mut urls: Vec<String> = self.urls().split(',').map(str::to_owned).collect();
        let len = urls.len();
        urls.rotate_left((first as usize).saturating_sub(1) % len.max(1));
        urls
    }

    /// Exclusive use of the nodes until the guard drops, when every stopped
    /// node is started again (so a failed test leaves a full cluster).
    pub async fn take_nodes(&self) -> NodesGuard<'static> {
        NodesGuard {
            _turn: NODES.lock().await,
            cluster: self.clone(),
            touched: AtomicBool::new(false),
        }
    }

    /// `scripts/rabbitmq-cluster <args>`.
    pub async fn run(&self, args: &[&str]) {
        let script = self.script.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(&script)
                .args(&args)
                .output()
                .unwrap_or_else(|e| panic!("{} runs: {e}", script.display()));
            assert!(
                out.status.success(),
                "rabbitmq-cluster {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await
        .expect("the rabbitmq-cluster task");
    }

    /// The node (1..=3) that leads quorum queue `queue`, asked of any running node.
    pub async fn leader_of(&self, queue: &str) -> u32 {
        let queue = queue.to_owned();
        tokio::task::spawn_blocking(move || {
            for n in 1..=3 {
                let out = Command::new("rabbitmqctl")
                    .args(["-q", "-n", &format!("tessera-c{n}@localhost")])
                    .args(["list_queues", "--formatter", "json", "name", "leader"])
                    .output()
                    .expect("rabbitmqctl runs");
                if !out.status.success() {
                    continue;
                }
                let listing: Vec<serde_json::Value> =
                    serde_json::from_slice(&out.stdout).expect("rabbitmqctl prints json");
                if let Some(q) = listing.iter().find(|q| q["name"] == queue.as_str()) {
                    let leader = q["leader"].as_str().expect("a quorum queue has a leader");
                    return node_number(leader)
                        .unwrap_or_else(|| panic!("unexpected leader {leader}"));
                }
            }
            panic!("no running node lists queue {queue}");
        })
        .await
        .expect("the rabbitmqctl task")
    }

    /// The node (1..=3) named first in a health detail of a bus on this
    /// cluster (`publish connection to 127.0.0.1:5682, ...`).
    pub fn node_in(&self, health_detail: &str) -> u32 {
        health_detail
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.get(..4))
            .and_then(|port| port.parse::<u32>().ok())
            .and_then(|port| port.checked_sub(5680))
            .unwrap_or_else(|| panic!("no cluster node in {health_detail:?}"))
    }
}

/// `tessera-c2@localhost` → 2.
fn node_number(node: &str) -> Option<u32> {
    node.strip_prefix("tessera-c")?
        .split('@')
        .next()?
        .parse()
        .ok()
}

/// Exclusive use of the cluster's nodes ([`RabbitCluster::take_nodes`]).
#[derive(Debug)]
pub struct NodesGuard<'a> {
    _turn: MutexGuard<'a, ()>,
    cluster: RabbitCluster,
    touched: AtomicBool,
}

impl NodesGuard<'_> {
    /// SIGKILLs node `n`'s VM (`kill-node`).
    pub async fn kill_node(&self, n: u32) {
        self.touched.store(true, Ordering::SeqCst);
        self.cluster.run(&["kill-node", &n.to_string()]).await;
    }

    /// Stops node `n` gracefully (`stop-node`).
    pub async fn stop_node(&self, n: u32) {
        self.touched.store(true, Ordering::SeqCst);
        self.cluster.run(&["stop-node", &n.to_string()]).await;
    }

    /// Starts node `n` again, back into the cluster (`start-node`).
    pub async fn start_node(&self, n: u32) {
        self.cluster.run(&["start-node", &n.to_string()]).await;
    }
}

impl Drop for NodesGuard<'_> {
    fn drop(&mut self) {
        if self.touched.load(Ordering::SeqCst) {
            // `start` is idempotent: running nodes are left as they are.
            let _ = Command::new(&self.cluster.script).arg("start").output();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_numbers_come_from_node_names_and_ports() {
        assert_eq!(node_number("tessera-c2@localhost"), Some(2));
        assert_eq!(node_number("rabbit@localhost"), None);
        let cluster = RabbitCluster::new();
        assert_eq!(
            cluster.node_in(
                "publish connection to 127.0.0.1:5683, consume connection to 127.0.0.1:5681"
            ),
            3
        );
    }

    #[test]
    fn urls_from_a_node_start_there() {
        let cluster = RabbitCluster::new();
        let urls = cluster.urls_from(2);
        assert_eq!(urls.len(), 3);
        if std::env::var_os("AMQP_CLUSTER_URLS").is_none() {
            assert!(urls[0].contains(":5682/"), "{urls:?}");
            assert!(urls[2].contains(":5681/"), "{urls:?}");
        }
    }
}
