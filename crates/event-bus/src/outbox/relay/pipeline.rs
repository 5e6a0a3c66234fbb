//! The relay's bookkeeping of the rows it holds: which were claimed, which
//! are out for publishing, which outcomes may be written, and which subjects
//! are held back behind a failed row.
//!
//! No I/O here: the loop (`run.rs`) and a single round (`round.rs`) feed it
//! claims and publish results and take the outcomes to settle, in an order
//! that keeps each subject's promise:
//!
//! - A subject's outcomes are released for settling in row order (the
//!   *prefix rule*): a confirmed row waits for the outcomes of the subject's
//!   earlier rows still out, so a row is never marked sent while an earlier
//!   row of its subject may still fail.
//! - Once a row of a subject fails, every later row of that subject this
//!   relay holds is released (handed back untried, or published again later
//!   if it already went out) and rows of that subject from claims issued
//!   before the failure was written are released too. The subject opens
//!   again once the failure is written and the subject's held rows are
//!   settled; from then on the database holds the subject back (the failed
//!   row backs off and is the subject's first row).

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

use super::{claim::Claimed, publish::ToPublish, round::Outcome};
use crate::RawEvent;

/// An outcome ready to be written to the table.
#[derive(Debug)]
pub(super) struct Settled {
    pub(super) seq: i64,
    /// Failed publishes before this one (for the backoff).
    pub(super) attempts: i32,
    pub(super) outcome: Outcome,
    subject: Option<String>,
    claim: u64,
}

/// A row claimed and not yet settled.
struct Slot {
    attempts: i32,
    subject: Option<String>,
    claim: u64,
    /// `None` while the publish is out.
    outcome: Option<Outcome>,
}

/// A subject held back behind its failed row `from_seq`.
struct Block {
    from_seq: i64,
    /// The failed row's outcome is written.
    written: bool,
    /// Claims from this one on may carry the subject again.
    open_from_claim: Option<u64>,
}

/// One claim's rows: when it was made and how many are not settled yet.
struct ClaimState {
    started: Instant,
    remaining: usize,
    span: tracing::Span,
    counts: Counts,
}

/// How a claim's rows ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) published: usize,
    pub(super) failed: usize,
    pub(super) parked: usize,
    pub(super) released: usize,
}

/// A claim whose rows are all settled: what to record for it.
pub(super) struct FinishedClaim {
    pub(super) claimed: usize,
    pub(super) counts: Counts,
    pub(super) started: Instant,
    pub(super) span: tracing::Span,
}

/// The rows a relay holds, from claim to settle.
#[derive(Default)]
pub(super) struct Pipeline {
    slots: HashMap<i64, Slot>,
    /// Per subject, the seqs of the slots whose outcome is not released yet, in order.
    order: HashMap<String, VecDeque<i64>>,
    /// Per subject, rows claimed and not yet settled (written).
    unsettled: HashMap<String, usize>,
    blocks: HashMap<String, Block>,
    ready: VecDeque<Settled>,
    claims: HashMap<u64, ClaimState>,
    next_claim: u64,
    held: usize,
}

impl Pipeline {
    /// Rows claimed and not yet settled.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Whether outcomes wait to be written.
    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The id of the next claim; call it right before issuing the claim.
    pub(super) fn start_claim(&mut self) -> u64 {
        let id = self.next_claim;
        self.next_claim += 1;
        id
    }

    /// Takes in the rows of claim `claim` (in seq order) and returns those to
    /// publish now, in order; the others already have their outcome (a row
    /// that cannot be decoded is parked, a row of a held subject released).
    pub(super) fn admit(
        &mut self,
        claim: u64,
        rows: Vec<Claimed>,
        span: tracing::Span,
        decode: impl Fn(&Claimed) -> Result<RawEvent, String>,
    ) -> Vec<ToPublish> {
        if rows.is_empty() {
            return Vec::new();
        }
        self.claims.insert(
            claim,
            ClaimState {
                started: Instant::now(),
                remaining: rows.len(),
                span,
                counts: Counts::default(),
            },
        );
        let mut publish = Vec::with_capacity(rows.len());
        let mut touched = Vec::new();
        for row in rows {
            let outcome = match decode(&row) {
                Err(reason) => {
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "parking an outbox row");
                    Some(Outcome::Parked(reason))
                }
                Ok(_) if self.holds_back(row.subject.as_deref(), claim) => Some(Outcome::Released),
                Ok(event) => {
                    publish.push(ToPublish {
                        seq: row.seq,
                        subject: row.subject.clone(),
                        attempts: row.attempts,
                        event,
                    });
                    None
                }
            };
            if outcome.is_some() {
                touched.push((row.seq, row.subject.clone()));
            }
            self.hold(row, claim, outcome);
        }
        for (seq, subject) in touched {
            self.advance(seq, subject);
        }
        publish
    }

    /// Whether rows of `subject` from claim `claim` must be released: the
    /// subject is held back and the claim was issued before it opened.
    fn holds_back(&mut self, subject: Option<&str>, claim: u64) -> bool {
        let Some(subject) = subject else {
            return false;
        };
        match self.blocks.get(subject) {
            None => false,
            Some(block) if block.open_from_claim.is_some_and(|open| claim >= open) => {
                self.blocks.remove(subject);
                false
            }
            Some(_) => true,
        }
    }

    fn hold(&mut self, row: Claimed, claim: u64, outcome: Option<Outcome>) {
        if let Some(subject) = &row.subject {
            self.order
                .entry(subject.clone())
                .or_default()
                .push_back(row.seq);
            *self.unsettled.entry(subject.clone()).or_default() += 1;
        }
        self.held += 1;
        self.slots.insert(
            row.seq,
            Slot {
                attempts: row.attempts,
                subject: row.subject,
                claim,
                outcome,
            },
        );
    }

    /// Records how the publish of row `seq` ended.
    pub(super) fn complete(&mut self, seq: i64, outcome: Outcome) {
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        slot.outcome = Some(outcome);
        let subject = slot.subject.clone();
        self.advance(seq, subject);
    }

    /// Row `seq` has its outcome: releases the outcomes of its subject that
    /// the prefix rule allows.
    fn advance(&mut self, seq: i64, subject: Option<String>) {
        let Some(subject) = subject else {
            // Rows without a subject have no order.
            if let Some(slot) = self.slots.remove(&seq) {
                self.release(seq, slot);
            }
            return;
        };
        loop {
            let Some(queue) = self.order.get_mut(&subject) else {
                return;
            };
            let Some(&seq) = queue.front() else {
                self.order.remove(&subject);
                return;
            };
            if self
                .slots
                .get(&seq)
                .is_none_or(|slot| slot.outcome.is_none())
            {
                return;
            }
            queue.pop_front();
            let Some(mut slot) = self.slots.remove(&seq) else {
                continue;
            };
            let held_back = self
                .blocks
                .get(&subject)
                .is_some_and(|block| block.from_seq < seq);
            if held_back {
                slot.outcome = Some(Outcome::Released);
            } else if matches!(slot.outcome, Some(Outcome::Failed(_))) {
                self.blocks.insert(
                    subject.clone(),
                    Block {
                        from_seq: seq,
                        written: false,
                        open_from_claim: None,
                    },
                );
            }
            self.release(seq, slot);
        }
    }

    fn release(&mut self, seq: i64, slot: Slot) {
        let outcome = slot.outcome.unwrap_or(Outcome::Released);
        self.ready.push_back(Settled {
            seq,
            attempts: slot.attempts,
            outcome,
            subject: slot.subject,
            claim: slot.claim,
        });
    }

    /// Takes up to `max` outcomes to write, oldest first.
    pub(super) fn take_ready(&mut self, max: usize) -> Vec<Settled> {
        let n = self.ready.len().min(max);
        self.ready.drain(..n).collect()
    }

    /// Puts outcomes whose write failed back in front, to be written again.
    pub(super) fn retry(&mut self, batch: Vec<Settled>) {
        for settled in batch.into_iter().rev() {
            self.ready.push_front(settled);
        }
    }

    /// Records that `batch` is written; returns the claims now fully settled.
    pub(super) fn settled(&mut self, batch: &[Settled]) -> Vec<FinishedClaim> {
        let mut finished = Vec::new();
        for settled in batch {
            self.held = self.held.saturating_sub(1);
            if let Some(subject) = &settled.subject {
                if let Some(count) = self.unsettled.get_mut(subject) {
                    *count = count.saturating_sub(1);
                }
                if let Some(block) = self.blocks.get_mut(subject)
                    && block.from_seq == settled.seq
                {
                    block.written = true;
                }
            }
            if let Some(claim) = self.claims.get_mut(&settled.claim) {
                let counts = &mut claim.counts;
                match settled.outcome {
                    Outcome::Sent => counts.published += 1,
                    Outcome::Failed(_) => counts.failed += 1,
                    Outcome::Parked(_) => counts.parked += 1,
                    Outcome::Released => counts.released += 1,
                }
                claim.remaining -= 1;
                if claim.remaining == 0
                    && let Some(done) = self.claims.remove(&settled.claim)
                {
                    let c = done.counts;
                    finished.push(FinishedClaim {
                        claimed: c.published + c.failed + c.parked + c.released,
                        counts: c,
                        started: done.started,
                        span: done.span,
                    });
                }
            }
        }
        // A subject opens once its failure is written and nothing of it is
        // held: the claims issued from now on see the failed row backing off.
        let next_claim = self.next_claim;
        for (subject, block) in &mut self.blocks {
            let idle = self.unsettled.get(subject).is_none_or(|n| *n == 0);
            if block.written && idle && block.open_from_claim.is_none() {
                block.open_from_claim = Some(next_claim);
            }
        }
        self.unsettled.retain(|_, n| *n > 0);
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attributes, BusError};

    fn row(seq: i64, subject: Option<&str>) -> Claimed {
        Claimed {
            seq,
            event_id: seq.to_string(),
            event_type: "t".to_owned(),
            subject: subject.map(str::to_owned),
            attributes: String::new(),
            data: Vec::new(),
            attempts: 0,
        }
    }

    fn ok(_: &Claimed) -> Result<RawEvent, String> {
        Ok(RawEvent::new(Attributes::new("1", "/s", "t"), Vec::new()))
    }

    fn admit(p: &mut Pipeline, rows: Vec<Claimed>) -> Vec<i64> {
        let claim = p.start_claim();
        p.admit(claim, rows, tracing::Span::none(), ok)
            .into_iter()
            .map(|r| r.seq)
            .collect()
    }

    fn failed() -> Outcome {
        Outcome::Failed(BusError::Rejected("nack".into()).to_string())
    }

    fn drain(p: &mut Pipeline) -> Vec<(i64, &'static str)> {
        let batch = p.take_ready(usize::MAX);
        p.settled(&batch);
        batch
            .iter()
            .map(|s| {
                let kind = match s.outcome {
                    Outcome::Sent => "sent",
                    Outcome::Failed(_) => "failed",
                    Outcome::Parked(_) => "parked",
                    Outcome::Released => "released",
                };
                (s.seq, kind)
            })
            .collect()
    }

    #[test]
    fn a_confirmed_row_waits_for_the_earlier_rows_of_its_subject() {
        let mut p = Pipeline::default();
        assert_eq!(
            admit(
                &mut p,
                vec![row(1, Some("a")), row(2, Some("a")), row(3, Some("b"))]
            ),
            [1, 2, 3]
        );
        p.complete(2, Outcome::Sent);
        p.complete(3, Outcome::Sent);
        assert_eq!(drain(&mut p), [(3, "sent")], "row 2 waits for row 1");
        p.complete(1, Outcome::Sent);
        assert_eq!(drain(&mut p), [(1, "sent"), (2, "sent")]);
        assert_eq!(p.held(), 0);
    }

    #[test]
    fn rows_after_a_failed_row_are_released_until_its_failure_is_written() {
        let mut p = Pipeline::default();
        admit(
            &mut p,
            vec![row(1, Some("a")), row(2, Some("a")), row(3, Some("b"))],
        );
        // A claim issued before the failure is written: its row of `a` is held back.
        let before = p.start_claim();
        p.complete(2, Outcome::Sent);
        p.complete(1, failed());
        p.complete(3, Outcome::Sent);
        let published = p.admit(
            before,
            vec![row(4, Some("a")), row(5, Some("b"))],
            tracing::Span::none(),
            ok,
        );
        assert_eq!(published.iter().map(|r| r.seq).collect::<Vec<_>>(), [5]);
        let mut written = drain(&mut p);
        written.sort_unstable();
        assert_eq!(
            written,
            [(1, "failed"), (2, "released"), (3, "sent"), (4, "released")]
        );
        // Written and nothing of `a` held: the next claim may carry `a` again.
        assert_eq!(admit(&mut p, vec![row(1, Some("a"))]), [1]);
        p.complete(5, Outcome::Sent);
        p.complete(1, Outcome::Sent);
        assert_eq!(drain(&mut p), [(5, "sent"), (1, "sent")]);
    }

    #[test]
    fn a_subject_stays_held_while_its_later_rows_are_out() {
        let mut p = Pipeline::default();
        admit(&mut p, vec![row(1, Some("a")), row(2, Some("a"))]);
        p.complete(1, failed());
        assert_eq!(drain(&mut p), [(1, "failed")]);
        // Row 2 is still out: a new claim must not carry `a`.
        assert!(admit(&mut p, vec![row(3, Some("a"))]).is_empty());
        p.complete(2, Outcome::Sent);
        assert_eq!(drain(&mut p), [(2, "released"), (3, "released")]);
        assert_eq!(admit(&mut p, vec![row(1, Some("a"))]), [1]);
    }

    #[test]
    fn an_earlier_failure_completing_late_still_releases_the_later_rows() {
        let mut p = Pipeline::default();
        admit(&mut p, vec![row(1, Some("a")), row(2, Some("a"))]);
        p.complete(2, failed());
        p.complete(1, failed());
        assert_eq!(drain(&mut p), [(1, "failed"), (2, "released")]);
    }

    #[test]
    fn parked_rows_do_not_hold_their_subject_and_rows_without_subject_have_no_order() {
        let mut p = Pipeline::default();
        let claim = p.start_claim();
        let bad = |r: &Claimed| {
            if r.seq == 1 {
                Err("bad".to_owned())
            } else {
                ok(r)
            }
        };
        let out = p.admit(
            claim,
            vec![
                row(1, Some("a")),
                row(2, Some("a")),
                row(3, None),
                row(4, None),
            ],
            tracing::Span::none(),
            bad,
        );
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3, 4]);
        p.complete(4, Outcome::Sent);
        p.complete(2, Outcome::Sent);
        assert_eq!(drain(&mut p), [(1, "parked"), (4, "sent"), (2, "sent")]);
        p.complete(3, failed());
        assert_eq!(drain(&mut p), [(3, "failed")]);
        assert_eq!(p.held(), 0);
    }

    #[test]
    fn a_claim_is_finished_once_all_its_rows_are_written() {
        let mut p = Pipeline::default();
        admit(&mut p, vec![row(1, Some("a")), row(2, Some("b"))]);
        p.complete(1, Outcome::Sent);
        let batch = p.take_ready(usize::MAX);
        assert!(p.settled(&batch).is_empty());
        p.complete(2, failed());
        let batch = p.take_ready(usize::MAX);
        let done = p.settled(&batch);
        assert_eq!(done.len(), 1);
        assert_eq!(
            (
                done[0].claimed,
                done[0].counts.published,
                done[0].counts.failed
            ),
            (2, 1, 1)
        );
    }
}
