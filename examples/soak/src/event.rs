//! [`Tick`]: the soak's event, and the clock both ends read.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One event: the `seq`-th of its subject, committed at `committed_us`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The subject (`s0`, `s1`, ...); the outbox keeps a subject's order.
    pub subject: String,
    /// 1, 2, 3, ... per subject, in commit order.
    pub seq: i64,
    /// When the publisher's transaction was opened, µs since the Unix epoch.
    pub committed_us: i64,
}
tessera_event_bus::event!(Tick => "dev.tessera.soak.tick.v1", subject = subject);

/// The source of every [`Tick`].
pub const SOURCE: &str = "/soak";

/// Microseconds since the Unix epoch on this machine's clock, which the
/// publishers and the consumers share (they run in one process).
pub(crate) fn now_us() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}
