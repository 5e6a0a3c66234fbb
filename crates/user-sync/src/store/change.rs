//! What a store is asked to do ([`Change`]) and what it did ([`Outcome`],
//! [`ApplyReport`]).

use super::user::{DeletedUser, ReplicatedUser};

/// One change for a store to apply through the version gate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Insert or replace the user if this version is newer.
    Upsert(ReplicatedUser),
    /// Tombstone the user unless already deleted.
    Delete(DeletedUser),
}

impl Change {
    /// The user id.
    pub fn user_id(&self) -> &str {
        match self {
            Self::Upsert(u) => &u.user_id,
            Self::Delete(d) => &d.user_id,
        }
    }

    /// The version.
    pub fn version(&self) -> u64 {
        match self {
            Self::Upsert(u) => u.version,
            Self::Delete(d) => d.version,
        }
    }
}

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A user the replica did not know was inserted.
    Inserted,
    /// A live user was replaced by a newer version.
    Updated,
    /// A tombstone was written.
    Deleted,
    /// Nothing changed: the version was not newer, or the user is deleted.
    Ignored,
}

impl Outcome {
    /// The metric label: `inserted`, `updated`, `deleted`, `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inserted => "inserted",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Ignored => "ignored",
        }
    }
}

/// Counts of what a batch of changes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ApplyReport {
    /// Users inserted.
    pub inserted: usize,
    /// Users replaced by a newer version.
    pub updated: usize,
    /// Tombstones written.
    pub deleted: usize,
    /// Changes that were no-ops (stale, duplicate, after deletion, or
    /// superseded by a newer change of the same user in the batch).
    pub ignored: usize,
}

impl ApplyReport {
    /// Counts one outcome.
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Inserted => self.inserted += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Ignored => self.ignored += 1,
        }
    }

    /// The outcome of a batch of one change.
    pub fn single(&self) -> Outcome {
        if self.inserted > 0 {
            Outcome::Inserted
        } else if self.updated > 0 {
            Outcome::Updated
        } else if self.deleted > 0 {
            Outcome::Deleted
        } else {
            Outcome::Ignored
        }
    }

    /// Changes that took effect.
    pub fn applied(&self) -> usize {
        self.inserted + self.updated + self.deleted
    }

    /// Adds another report's counts.
    pub fn merge(&mut self, other: Self) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.ignored += other.ignored;
    }
}
