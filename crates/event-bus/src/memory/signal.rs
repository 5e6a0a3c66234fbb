//! [`Signal`]: a wake-up that costs nothing when nobody waits.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A [`Notify`] that is only rung when someone waits: ringing takes the
/// notifier's lock, which every publish and take would pay otherwise.
///
/// A waiter registers (`waiting` + 1, notification enabled) before its last
/// look at the queues under the state lock; a ringer changes the queues
/// under that lock and reads `waiting` afterwards. So either the waiter's
/// look sees the change or the ringer sees the waiter: no lost wakeup.
#[derive(Debug, Default)]
pub(super) struct Signal {
    pub(super) notify: Notify,
    waiting: AtomicUsize,
}

impl Signal {
    pub(super) fn ring(&self) {
        if self.has_waiters() {
            self.notify.notify_waiters();
        }
    }

    pub(super) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    pub(super) fn register(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }
}

/// One registered waiter of a [`Signal`]; unregisters on drop (also when the
/// waiting future is cancelled).
pub(super) struct Waiting<'a>(&'a Signal);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
