//! The in-memory backend: broker semantics inside the process.
//!
//! [`MemoryBus`] behaves like the brokers do, so examples and tests exercise
//! the same code paths: consumer groups that each receive every event,
//! competing members within a group, ack / nack, redelivery of anything not
//! settled (including a [`crate::Delivery`] dropped unsettled),
//! delayed retry, an optional delivery limit, inspectable dead letters, and
//! bounded queues that make `publish` wait when a group's queue is full.
//! Waiting uses [`tokio::sync::Notify`]; nothing polls.
//!
//! Events live in memory only: they are gone when the process stops. Unlike
//! a broker channel, closing a subscription does not take back its
//! outstanding deliveries at once: each goes back to the queue when it is
//! dropped unsettled (and may still be settled until then).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bytes::Bytes;
//! use tessera_event_bus::{Attributes, Publisher, RawEvent, SubscribeOptions, Subscriber};
//! use tessera_event_bus::memory::{MemoryBus, MemoryConfig};
//!
//! let bus = MemoryBus::with_config(MemoryConfig::default().queue_capacity(100));
//! let mut sub = bus.subscriber()
//!     .subscribe(SubscribeOptions::new("billing").event_type("com.example.order.placed.v1"))
//!     .await?;
//! let event = RawEvent::new(Attributes::new("1", "/orders", "com.example.order.placed.v1"), Bytes::new());
//! bus.publisher().publish(event).await?;
//!
//! let delivery = sub.next().await?.unwrap();
//! delivery.dead_letter("cannot bill").await?;
//! let dead = bus.dead_letters("billing");
//! assert_eq!(dead.len(), 1);
//! assert_eq!(dead[0].reason, "cannot bill");
//! # Ok::<(), tessera_event_bus::BusError>(())
//! # }).unwrap();
//! ```

mod topic;

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use async_trait::async_trait;
use tokio::sync::Notify;

pub use self::topic::topic_matches;
use crate::{
    Acker, Delivery, Health, Publisher, RawEvent, Settlement, SubscribeOptions, Subscriber,
    Subscription, error::BusError,
};

/// Settings of a [`MemoryBus`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryConfig {
    queue_capacity: usize,
    max_deliveries: Option<u32>,
    drop_unroutable: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            max_deliveries: None,
            drop_unroutable: false,
        }
    }
}

impl MemoryConfig {
    /// How many events may wait in one group's queue (ready or delayed) before
    /// `publish` waits for room. Default 10,000; at least 1.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Dead-letters an event instead of delivering it for the `n + 1`-th time
    /// (like a RabbitMQ quorum queue's delivery limit), so a message that
    /// crashes its consumer cannot loop forever. Default: no limit.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = Some(n.max(1));
        self
    }

    /// Accepts events no group is bound to and drops them, instead of failing
    /// with [`BusError::Unroutable`] as the brokers' mandatory publishing does.
    pub fn drop_unroutable_events_silently(mut self) -> Self {
        self.drop_unroutable = true;
        self
    }
}

/// An event that was given up on, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event as it was published.
    pub event: RawEvent,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u32,
}

/// An in-process event bus with broker semantics; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    config: MemoryConfig,
    state: Mutex<State>,
    /// Woken whenever a queue shrinks, for publishers waiting for room.
    space: Signal,
}

/// A [`Notify`] that is only rung when someone waits: ringing takes the
/// notifier's lock, which every publish and take would pay otherwise.
///
/// A waiter registers (`waiting` + 1, notification enabled) before its last
/// look at the queues under the state lock; a ringer changes the queues
/// under that lock and reads `waiting` afterwards. So either the waiter's
/// look sees the change or the ringer sees the waiter: no lost wakeup.
#[derive(Debug, Default)]
struct Signal {
    notify: Notify,
    waiting: std::sync::atomic::AtomicUsize,
}

impl Signal {
    fn ring(&self) {
        if self.has_waiters() {
            self.notify.notify_waiters();
        }
    }

    fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    fn register(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }
}

/// One registered waiter of a [`Signal`]; unregisters on drop (also when the
/// waiting future is cancelled).
struct Waiting<'a>(&'a Signal);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct State {
    /// Groups are never removed: subscriptions and ackers keep their index.
    groups: Vec<Group>,
    by_name: HashMap<String, usize>,
}

impl State {
    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(*self.by_name.get(name)?)
    }

    fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.get_mut(*self.by_name.get(name)?)
    }

    /// The index of the group named `name`, created if new.
    fn join(&mut self, name: &str) -> usize {
        if let Some(&index) = self.by_name.get(name) {
            return index;
        }
        self.groups.push(Group::default());
        self.by_name.insert(name.to_owned(), self.groups.len() - 1);
        self.groups.len() - 1
    }
}

#[derive(Debug, Default)]
struct Group {
    bindings: Vec<String>,
    ready: VecDeque<Entry>,
    delayed: usize,
    in_flight: usize,
    dead: Vec<DeadLetter>,
    available: Arc<Signal>,
}

impl Group {
    fn is_full(&self, capacity: usize) -> bool {
        self.ready.len() + self.delayed >= capacity
    }
}

#[derive(Debug)]
struct Entry {
    /// Shared by every group's queue and the deliveries: never copied.
    event: Arc<RawEvent>,
    deliveries: u32,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent data (every mutation is
    // a single push or pop), so poisoning is ignored.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryBus {
    /// A bus with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus with the given settings.
    pub fn with_config(config: MemoryConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    /// A publisher on this bus (its own connection: closing it closes only it).
    pub fn publisher(&self) -> MemoryPublisher {
        MemoryPublisher {
            inner: Arc::clone(&self.inner),
            closed: AtomicBool::new(false),
        }
    }

    /// A subscriber on this bus (its own connection: closing it ends only its subscriptions).
    pub fn subscriber(&self) -> MemorySubscriber {
        MemorySubscriber {
            inner: Arc::clone(&self.inner),
            handle: Arc::new(Handle::default()),
        }
    }

    /// The dead letters of a group, oldest first.
    pub fn dead_letters(&self, group: &str) -> Vec<DeadLetter> {
        lock(&self.inner.state)
            .group(group)
            .map(|g| g.dead.clone())
            .unwrap_or_default()
    }

    /// Removes and returns the dead letters of a group.
    pub fn take_dead_letters(&self, group: &str) -> Vec<DeadLetter> {
        lock(&self.inner.state)
            .group_mut(group)
            .map(|g| std::mem::take(&mut g.dead))
            .unwrap_or_default()
    }

    /// How many events of a group wait for delivery (ready or delayed).
    pub fn queued(&self, group: &str) -> usize {
        lock(&self.inner.state)
            .group(group)
            .map_or(0, |g| g.ready.len() + g.delayed)
    }

    /// How many events of a group are delivered and not yet settled.
    pub fn in_flight(&self, group: &str) -> usize {
        lock(&self.inner.state)
            .group(group)
            .map_or(0, |g| g.in_flight)
    }
}

/// The [`Publisher`] of a [`MemoryBus`].
#[derive(Debug)]
pub struct MemoryPublisher {
    inner: Arc<Inner>,
    closed: AtomicBool,
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
                    if self.inner.config.drop_unroutable {
                        return Ok(());
                    }
                    return Err(BusError::Unroutable(ty.to_owned()));
                }
                if full {
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
                    Some(wake)
                }
            };
            match wake {
                Some((first, more)) => {
                    first.iter().chain(&more).for_each(|signal| signal.ring());
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
}

/// Shared by a subscriber and its subscriptions.
#[derive(Debug, Default)]
struct Handle {
    closed: AtomicBool,
    closing: Notify,
}

/// The [`Subscriber`] of a [`MemoryBus`].
#[derive(Debug)]
pub struct MemorySubscriber {
    inner: Arc<Inner>,
    handle: Arc<Handle>,
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
}

/// One member of a consumer group on a [`MemoryBus`].
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
        let group = state.groups.get_mut(self.index)?;
        let taken = loop {
            let mut entry = group.ready.pop_front()?;
            if let Some(limit) = self.inner.config.max_deliveries
                && entry.deliveries >= limit
            {
                group.dead.push(DeadLetter {
                    reason: format!("delivery limit of {limit} reached"),
                    deliveries: entry.deliveries,
                    event: Arc::unwrap_or_clone(entry.event),
                });
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

/// Settles one in-memory delivery; requeues it when dropped unsettled.
struct MemoryAcker {
    inner: Arc<Inner>,
    group: Arc<str>,
    /// The group's index in [`State::groups`].
    index: usize,
    /// The entry, until settled.
    pending: Mutex<Option<Entry>>,
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

    fn requeue(inner: &Inner, index: usize, entry: Entry, front: bool) {
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
            Settlement::DeadLetter(reason) => self.with_group(|g| {
                g.dead.push(DeadLetter {
                    event: Arc::unwrap_or_clone(entry.event),
                    reason,
                    deliveries: entry.deliveries,
                });
            }),
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

/// How long [`MemoryBus`] tests may wait; not a performance bound.
#[cfg(test)]
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests;
