//! [`MemoryBus`]: the bus itself, its publishers and subscribers, and what it lets you inspect.

use std::sync::{Arc, atomic::AtomicBool};

use super::{
    config::MemoryConfig,
    dead_letter::MemoryDeadLetters,
    publisher::MemoryPublisher,
    state::{Inner, lock},
    subscriber::{Handle, MemorySubscriber},
};
use crate::dead_letter::DeadLetter;

/// An in-process event bus with broker semantics; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    inner: Arc<Inner>,
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

    /// The dead letters of a group as a [`DeadLetterQueue`](crate::DeadLetterQueue):
    /// list, replay, discard.
    pub fn dead_letter_queue(&self, group: &str) -> MemoryDeadLetters {
        MemoryDeadLetters::new(Arc::clone(&self.inner), group)
    }

    /// The dead letters of a group, oldest first (a synchronous shortcut for
    /// tests; [`dead_letter_queue`](Self::dead_letter_queue) is the same on
    /// every backend).
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
