//! [`MemorySubscriber`] and its subscriptions: joining a group and taking deliveries.

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    ack::MemoryAcker,
    signal::Signal,
    state::{Entry, Inner, lock},
};
use crate::{
    Delivery, Health, RawEvent, SubscribeOptions, Subscriber, Subscription, error::BusError,
};

/// Shared by a subscriber and its subscriptions.
#[derive(Debug, Default)]
pub(super) struct Handle {
    closed: AtomicBool,
    closing: Notify,
}

/// The [`Subscriber`] of a [`MemoryBus`](super::MemoryBus).
#[derive(Debug)]
pub struct MemorySubscriber {
    pub(super) inner: Arc<Inner>,
    pub(super) handle: Arc<Handle>,
}

#[async_trait]
impl Subscriber for MemorySubscriber {
    async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        options.validate()?;
        if self.handle.closed.load(Ordering::Acquire) {
            return Err(BusError::Closed);
        }
        let (index, available) = {
            let mut state = lock(&self.inner.state);
            let index = state.join(&options.group);
            let group = &mut state.groups[index];
            for ty in options.event_types {
                if !group.bindings.contains(&ty) {
                    group.bindings.push(ty);
                }
            }
            (index, Arc::clone(&group.available))
        };
        Ok(Box::new(MemorySubscription {
            inner: Arc::clone(&self.inner),
            handle: Arc::clone(&self.handle),
            group: Arc::from(options.group),
            index,
            available,
            closed: false,
        }))
    }

    async fn close(&self) -> Result<(), BusError> {
        self.handle.closed.store(true, Ordering::Release);
        self.handle.closing.notify_waiters();
        Ok(())
    }

    fn health(&self) -> Health {
        if self.handle.closed.load(Ordering::Acquire) {
            Health::down("subscriber closed")
        } else {
            Health::up()
        }
    }

    fn messaging(&self) -> crate::messaging::Messaging {
        crate::messaging::Messaging::new("memory")
    }
}

/// One member of a consumer group on a [`MemoryBus`](super::MemoryBus).
struct MemorySubscription {
    inner: Arc<Inner>,
    handle: Arc<Handle>,
    group: Arc<str>,
    /// The group's index in [`State::groups`].
    index: usize,
    available: Arc<Signal>,
    closed: bool,
}

impl fmt::Debug for MemorySubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscription")
            .field("group", &self.group)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl MemorySubscription {
    fn is_closed(&self) -> bool {
        self.closed || self.handle.closed.load(Ordering::Acquire)
    }

    /// Takes the next deliverable entry, dead-lettering those over the delivery limit.
    fn try_take(&self) -> Option<(Arc<RawEvent>, u32)> {
        let mut state = lock(&self.inner.state);
        let taken = loop {
            let group = state.groups.get_mut(self.index)?;
            let mut entry = group.ready.pop_front()?;
            if let Some(limit) = self.inner.config.max_deliveries
                && entry.deliveries >= limit
            {
                let reason = format!("delivery limit of {limit} reached");
                state.dead_letter(self.index, entry, reason);
                continue;
            }
            entry.deliveries += 1;
            group.in_flight += 1;
            break (entry.event, entry.deliveries);
        };
        drop(state);
        self.inner.space.ring();
        Some(taken)
    }

    fn take_delivery(&self) -> Option<Delivery> {
        let (event, deliveries) = self.try_take()?;
        let acker = MemoryAcker {
            inner: Arc::clone(&self.inner),
            group: Arc::clone(&self.group),
            index: self.index,
            pending: Mutex::new(Some(Entry {
                event: Arc::clone(&event),
                deliveries,
            })),
        };
        Some(Delivery::shared(event, deliveries, Box::new(acker)))
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            if self.is_closed() {
                return Ok(None);
            }
            // Taking and returning happen without an await in between: cancel safe.
            if let Some(delivery) = self.take_delivery() {
                return Ok(Some(delivery));
            }
            // Nothing ready: register as a waiter, look once more, then sleep.
            let signal = Arc::clone(&self.available);
            let _waiting = signal.register();
            let available = signal.notify.notified();
            let closing = self.handle.closing.notified();
            tokio::pin!(available, closing);
            available.as_mut().enable();
            closing.as_mut().enable();
            if self.is_closed() {
                return Ok(None);
            }
            if let Some(delivery) = self.take_delivery() {
                return Ok(Some(delivery));
            }
            tokio::select! {
                () = available => {}
                () = closing => {}
            }
        }
    }

    fn try_next(&mut self) -> Option<Delivery> {
        if self.is_closed() {
            return None;
        }
        self.take_delivery()
    }

    async fn close(&mut self) -> Result<(), BusError> {
        self.closed = true;
        Ok(())
    }
}
