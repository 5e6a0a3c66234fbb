//! Arbitrary snapshot pages through a backfill into an in-memory replica:
//! errors, no panic, and the run ends, also when the pages' cursors form a
//! cycle.
//!
//! Input: one page body (the JSON the HTTP snapshot endpoint returns) per
//! line. The first request gets page 0; cursor `p<i>` gets page `i`; any
//! other cursor is an unknown one (an error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_fuzz::{block_on, lines};
use tessera_user_sync::UserReplica;
use tessera_user_sync::error::SnapshotError;
use tessera_user_sync::snapshot::{Backfill, SnapshotPage, SnapshotSource};

#[derive(Debug)]
struct Pages<'a> {
    bodies: Vec<&'a [u8]>,
    requests: AtomicUsize,
}

#[async_trait::async_trait]
impl SnapshotSource for Pages<'_> {
    async fn page(&self, after: Option<&str>, _limit: u32) -> Result<SnapshotPage, SnapshotError> {
        let requests = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        // Each cursor names one page: more requests than pages (and the
        // first) means some cursor was followed twice.
        assert!(
            requests <= self.bodies.len() + 1,
            "request {requests} for {} pages: the backfill does not end",
            self.bodies.len()
        );
        let index = match after {
            None => 0,
            Some(cursor) => cursor
                .strip_prefix('p')
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|&i| i < self.bodies.len())
                .ok_or_else(|| SnapshotError::Malformed(format!("unknown cursor {cursor:?}")))?,
        };
        // What `HttpSnapshot` does with a body.
        serde_json::from_slice(self.bodies[index])
            .map_err(|e| SnapshotError::Malformed(e.to_string()))
    }
}

fuzz_target!(|data: &[u8]| {
    let bodies: Vec<&[u8]> = lines(data).take(32).collect();
    let source = Pages {
        bodies,
        requests: AtomicUsize::new(0),
    };
    let replica = UserReplica::in_memory("fuzz");
    if let Ok(report) = block_on(Backfill::new(source).page_size(10).run(&replica)) {
        assert!(report.pages >= 1);
        assert!(report.applied.inserted + report.applied.updated <= report.users);
    }
});
