//! The bus's shared state: consumer groups, their queues and dead letters.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use super::{config::MemoryConfig, signal::Signal};
use crate::{
    dead_letter::{DeadLetter, DeadLetterId},
    message::RawEvent,
};

/// What every handle on one bus shares.
#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) config: MemoryConfig,
    pub(super) state: Mutex<State>,
    /// Woken whenever a queue shrinks, for publishers waiting for room.
    pub(super) space: Signal,
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// Groups are never removed: subscriptions and ackers keep their index.
    pub(super) groups: Vec<Group>,
    by_name: HashMap<String, usize>,
    /// The id of the next dead letter: unique on this bus, never reused.
    next_dead_letter: u64,
    /// The order in which publishes that had to wait for room go in.
    pub(super) tickets: Tickets,
}

/// Publishes that find a queue full wait in line: each takes a ticket
/// (under the state lock, so in the order they were called) and pushes only
/// on its turn, and a publish that finds anyone in line takes a ticket too.
/// So events go into the queues in the order their `publish` calls began,
/// even when the queues are full (the outbox relay's per-subject order rests
/// on it).
#[derive(Debug, Default)]
pub(super) struct Tickets {
    next: u64,
    serving: u64,
    /// Tickets given up (a cancelled or failed publish) before their turn.
    abandoned: BTreeSet<u64>,
}

impl Tickets {
    /// Whether any publish waits in line.
    pub(super) fn anyone_waiting(&self) -> bool {
        self.serving != self.next
    }

    pub(super) fn take(&mut self) -> u64 {
        let ticket = self.next;
        self.next += 1;
        ticket
    }

    pub(super) fn is_turn(&self, ticket: u64) -> bool {
        self.serving == ticket
    }

    /// `ticket` is done with (pushed, failed or given up): the next one's
    /// turn comes once every earlier ticket is done.
    pub(super) fn done(&mut self, ticket: u64) {
        if ticket == self.serving {
            self.serving += 1;
            while self.abandoned.remove(&self.serving) {
                self.serving += 1;
            }
        } else {
            self.abandoned.insert(ticket);
        }
    }
}

impl State {
    pub(super) fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(*self.by_name.get(name)?)
    }

    pub(super) fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.groups.get_mut(*self.by_name.get(name)?)
    }

    /// The index of the group named `name`, created if new.
    pub(super) fn join(&mut self, name: &str) -> usize {
        if let Some(&index) = self.by_name.get(name) {
            return index;
        }
        self.groups.push(Group::default());
        self.by_name.insert(name.to_owned(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// Keeps `entry` among the dead letters of the group at `index`.
    pub(super) fn dead_letter(&mut self, index: usize, entry: Entry, reason: String) {
        let id = self.next_dead_letter;
        self.next_dead_letter += 1;
        if let Some(group) = self.groups.get_mut(index) {
            group.dead.push(DeadLetter::new(
                DeadLetterId::new(id.to_string()),
                Ok(Arc::unwrap_or_clone(entry.event)),
                reason,
                entry.deliveries,
            ));
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Group {
    pub(super) bindings: Vec<String>,
    pub(super) ready: VecDeque<Entry>,
    pub(super) delayed: usize,
    pub(super) in_flight: usize,
    /// Oldest first.
    pub(super) dead: Vec<DeadLetter>,
    pub(super) available: Arc<Signal>,
}

impl Group {
    pub(super) fn is_full(&self, capacity: usize) -> bool {
        self.ready.len() + self.delayed >= capacity
    }
}

#[derive(Debug)]
pub(super) struct Entry {
    /// Shared by every group's queue and the deliveries: never copied.
    pub(super) event: Arc<RawEvent>,
    pub(super) deliveries: u32,
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent data (every mutation is
    // a single push or pop), so poisoning is ignored.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
