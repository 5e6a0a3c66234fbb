//! [`MemoryDeadLetters`]: one group's dead letters as a [`DeadLetterQueue`].

use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::state::{Entry, Group, Inner, lock};
use crate::{
    dead_letter::{DeadLetter, DeadLetterId, DeadLetterQueue},
    error::BusError,
};

/// The dead letters of one consumer group on a
/// [`MemoryBus`](super::MemoryBus), from
/// [`MemoryBus::dead_letter_queue`](super::MemoryBus::dead_letter_queue).
/// Ids are unique on the bus and never reused. A replayed event goes back
/// at the end of the group's queue (past its capacity if need be: it was in
/// the queue before), its delivery count reset.
#[derive(Clone)]
pub struct MemoryDeadLetters {
    inner: Arc<Inner>,
    group: Arc<str>,
}

impl fmt::Debug for MemoryDeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDeadLetters")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl MemoryDeadLetters {
    pub(super) fn new(inner: Arc<Inner>, group: &str) -> Self {
        Self {
            inner,
            group: Arc::from(group),
        }
    }

    /// Removes the dead letters with these ids from the group, oldest first;
    /// the group's state stays locked while `then` uses them.
    fn take<T>(
        &self,
        ids: &[DeadLetterId],
        then: impl FnOnce(&mut Group, Vec<DeadLetter>) -> T,
    ) -> Option<T> {
        let mut state = lock(&self.inner.state);
        let group = state.group_mut(&self.group)?;
        let (taken, kept) = std::mem::take(&mut group.dead)
            .into_iter()
            .partition(|dead| ids.contains(&dead.id));
        group.dead = kept;
        Some(then(group, taken))
    }
}

#[async_trait]
impl DeadLetterQueue for MemoryDeadLetters {
    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        Ok(lock(&self.inner.state)
            .group(&self.group)
            .map(|g| g.dead.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn get(&self, id: &DeadLetterId) -> Result<Option<DeadLetter>, BusError> {
        Ok(lock(&self.inner.state)
            .group(&self.group)
            .and_then(|g| g.dead.iter().find(|dead| &dead.id == id).cloned()))
    }

    async fn replay(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        let replayed = self.take(ids, |group, replayed| {
            let count = replayed.len();
            // Every dead letter of a memory bus is an event (`Ok`).
            for event in replayed.into_iter().filter_map(|dead| dead.event.ok()) {
                group.ready.push_back(Entry {
                    event: Arc::new(event),
                    deliveries: 0,
                });
            }
            (count, Arc::clone(&group.available))
        });
        let Some((count, available)) = replayed else {
            return Ok(0);
        };
        available.ring();
        Ok(count)
    }

    async fn discard(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        Ok(self.take(ids, |_, discarded| discarded.len()).unwrap_or(0))
    }
}
