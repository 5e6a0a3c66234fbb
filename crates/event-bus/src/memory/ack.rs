//! Settling in-memory deliveries: ack, requeue, delayed retry, dead letter.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::state::{Entry, Group, Inner, lock};
use crate::{Acker, Settlement, error::BusError};

/// Settles one in-memory delivery; requeues it when dropped unsettled.
pub(super) struct MemoryAcker {
    pub(super) inner: Arc<Inner>,
    pub(super) group: Arc<str>,
    /// The group's index in the state's groups.
    pub(super) index: usize,
    /// The entry, until settled.
    pub(super) pending: Mutex<Option<Entry>>,
}

impl fmt::Debug for MemoryAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAcker")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl MemoryAcker {
    fn take(&self) -> Option<Entry> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    pub(super) fn requeue(inner: &Inner, index: usize, entry: Entry, front: bool) {
        let wake = {
            let mut state = lock(&inner.state);
            let Some(g) = state.groups.get_mut(index) else {
                return;
            };
            if front {
                g.in_flight = g.in_flight.saturating_sub(1);
                g.ready.push_front(entry);
            } else {
                g.delayed = g.delayed.saturating_sub(1);
                g.ready.push_back(entry);
            }
            Arc::clone(&g.available)
        };
        wake.ring();
    }

    fn with_group(&self, f: impl FnOnce(&mut Group)) {
        let mut state = lock(&self.inner.state);
        if let Some(g) = state.groups.get_mut(self.index) {
            g.in_flight = g.in_flight.saturating_sub(1);
            f(g);
        }
    }
}

impl MemoryAcker {
    /// Settling never waits here: a delayed retry is a timer task.
    fn settle_now(&self, settlement: Settlement) {
        let Some(entry) = self.take() else {
            return;
        };
        match settlement {
            Settlement::Ack => self.with_group(|_| {}),
            Settlement::Requeue => Self::requeue(&self.inner, self.index, entry, true),
            Settlement::RetryAfter(delay) => {
                self.with_group(|g| g.delayed += 1);
                let inner = Arc::clone(&self.inner);
                let index = self.index;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    Self::requeue(&inner, index, entry, false);
                });
            }
            Settlement::DeadLetter(reason) => {
                let mut state = lock(&self.inner.state);
                if let Some(g) = state.groups.get_mut(self.index) {
                    g.in_flight = g.in_flight.saturating_sub(1);
                }
                state.dead_letter(self.index, entry, reason);
            }
        }
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        self.settle_now(settlement);
        Ok(())
    }

    fn try_settle(&self, settlement: Settlement) -> Result<Result<(), BusError>, Settlement> {
        self.settle_now(settlement);
        Ok(Ok(()))
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        // Never settled: deliver again, as a broker does when the channel closes.
        if let Some(entry) = self.take() {
            Self::requeue(&self.inner, self.index, entry, true);
        }
    }
}
