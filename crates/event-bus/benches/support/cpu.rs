//! Who used the CPU during a bench's timed windows: the whole machine (from
//! `/proc/stat`) and the RabbitMQ broker (its VM's `utime + stime` from
//! `/proc/<pid>/stat`), so a throughput figure can say whether the broker or
//! the machine was the limit. Linux only; elsewhere nothing is measured.

use std::time::{Duration, Instant};

/// The OS process id of the broker's VM, asked of the default node with
/// `rabbitmqctl eval 'os:getpid().'`; `None` when that does not work.
pub(crate) fn broker_pid() -> Option<u32> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["eval", "os:getpid()."])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_matches('"')
        .parse()
        .ok()
}

/// CPU counters at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    at: Instant,
    busy: u64,
    total: u64,
    broker: Option<u64>,
}

impl Sample {
    pub(crate) fn now(broker: Option<u32>) -> Self {
        let (busy, total) = machine().unwrap_or((0, 0));
        Self {
            at: Instant::now(),
            busy,
            total,
            broker: broker.and_then(process_ticks),
        }
    }
}

/// `(busy, total)` ticks of all CPUs since boot.
fn machine() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `utime + stime` of a process, in ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use summed over timed windows.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    wall: Duration,
    busy: u64,
    total: u64,
    broker: Option<u64>,
}

impl Usage {
    /// Adds the window from `start` to now.
    pub(crate) fn add(&mut self, start: Sample, broker: Option<u32>) {
        let end = Sample::now(broker);
        self.wall += end.at - start.at;
        self.busy += end.busy.saturating_sub(start.busy);
        self.total += end.total.saturating_sub(start.total);
        if let (Some(a), Some(b)) = (start.broker, end.broker) {
            *self.broker.get_or_insert(0) += b.saturating_sub(a);
        }
    }

    /// A line for the bench's output: how busy the machine was, and how
    /// many cores the broker used, over the timed windows.
    pub(crate) fn report(&self, id: &str) -> String {
        if self.total == 0 {
            return format!("{id}: CPU use not measured (no /proc/stat)");
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        // Clock ticks are 100 a second on Linux.
        let seconds = self.wall.as_secs_f64();
        let broker = self.broker.map_or_else(
            || "broker not measured".to_owned(),
            |ticks| format!("broker {:.2} cores", ticks as f64 / 100.0 / seconds),
        );
        format!(
            "{id}: machine {:.0} % busy ({:.2} of {cores} cores), {broker}, over {seconds:.1} s timed",
            100.0 * self.busy as f64 / self.total as f64,
            cores * self.busy as f64 / self.total as f64,
        )
    }
}
