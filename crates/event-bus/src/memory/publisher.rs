//! [`MemoryPublisher`]: publishing into every bound group's queue.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;

use super::{
    state::{Entry, Group, Inner, State, lock},
    topic::topic_matches,
};
use crate::{Health, Publisher, RawEvent, error::BusError};

/// The [`Publisher`] of a [`MemoryBus`](super::MemoryBus).
#[derive(Debug)]
pub struct MemoryPublisher {
    pub(super) inner: Arc<Inner>,
    pub(super) closed: AtomicBool,
}

#[async_trait]
impl Publisher for MemoryPublisher {
    /// Enqueues the event in every bound group at once; waits while any of
    /// them is full. `Ok` means every group holds it.
    async fn publish(&self, event: RawEvent) -> Result<(), BusError> {
        event.attributes.validate()?;
        let event = Arc::new(event);
        let capacity = self.inner.config.queue_capacity;
        // Registered as a waiter only once a queue was found full.
        let mut waiting = None;
        // Taken once this publish has to wait in line (see `Tickets`).
        let mut ticket: Option<Ticket<'_>> = None;
        loop {
            let space = self.inner.space.notify.notified();
            tokio::pin!(space);
            if waiting.is_some() {
                space.as_mut().enable();
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(BusError::Closed);
            }
            let wake = {
                let mut state = lock(&self.inner.state);
                let ty = event.event_type();
                let bound = |g: &Group| g.bindings.iter().any(|b| topic_matches(b, ty));
                // Two passes instead of collecting the targets: no allocation.
                let (mut targets, mut full) = (0, false);
                for group in state.groups.iter().filter(|g| bound(g)) {
                    targets += 1;
                    full |= group.is_full(capacity);
                }
                if targets == 0 {
                    if let Some(ticket) = ticket.take() {
                        ticket.finish(&mut state);
                        drop(state);
                        self.inner.space.ring();
                    }
                    if self.inner.config.drop_unroutable {
                        return Ok(());
                    }
                    return Err(BusError::Unroutable(ty.to_owned()));
                }
                let my_turn = match &ticket {
                    Some(ticket) => state.tickets.is_turn(ticket.number),
                    None => !state.tickets.anyone_waiting(),
                };
                if full || !my_turn {
                    if ticket.is_none() {
                        ticket = Some(Ticket::new(&self.inner, state.tickets.take()));
                    }
                    None
                } else {
                    // Only groups with a member waiting need a ring (read under
                    // the lock, after the push: see `Signal`); the first such
                    // group costs no allocation here.
                    let mut wake = (None, Vec::new());
                    for group in state.groups.iter_mut().filter(|g| bound(g)) {
                        group.ready.push_back(Entry {
                            event: Arc::clone(&event),
                            deliveries: 0,
                        });
                        if group.available.has_waiters() {
                            let signal = Arc::clone(&group.available);
                            match wake.0 {
                                None => wake.0 = Some(signal),
                                Some(_) => wake.1.push(signal),
                            }
                        }
                    }
                    Some((wake, ticket.take().map(|ticket| ticket.finish(&mut state))))
                }
            };
            match wake {
                Some(((first, more), served)) => {
                    first.iter().chain(&more).for_each(|signal| signal.ring());
                    if served.is_some() {
                        // The next in line may go now.
                        self.inner.space.ring();
                    }
                    return Ok(());
                }
                // Look again, now registered, before sleeping.
                None if waiting.is_none() => waiting = Some(self.inner.space.register()),
                None => space.await,
            }
        }
    }

    async fn close(&self) -> Result<(), BusError> {
        self.closed.store(true, Ordering::Release);
        // Wake this publisher's calls waiting for room so they see the close.
        self.inner.space.notify.notify_waiters();
        Ok(())
    }

    fn health(&self) -> Health {
        if self.closed.load(Ordering::Acquire) {
            Health::down("publisher closed")
        } else {
            Health::up()
        }
    }

    fn messaging(&self) -> crate::messaging::Messaging {
        crate::messaging::Messaging::new("memory")
    }
}

/// A publish's place in line; given up (and the next one's turn made
/// possible) when the publish fails or is cancelled before its turn.
struct Ticket<'a> {
    inner: &'a Inner,
    number: u64,
    done: bool,
}

impl<'a> Ticket<'a> {
    fn new(inner: &'a Inner, number: u64) -> Self {
        Self {
            inner,
            number,
            done: false,
        }
    }

    /// Done with, under the state lock the caller holds.
    fn finish(mut self, state: &mut State) {
        state.tickets.done(self.number);
        self.done = true;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.inner.state).tickets.done(self.number);
            self.inner.space.ring();
        }
    }
}
