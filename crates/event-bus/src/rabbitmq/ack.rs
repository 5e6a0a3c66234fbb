//! Ack batching: the acks of one channel go out grouped into `basic.ack`
//! with `multiple`, never covering a delivery still being handled or
//! settled otherwise.

use std::{sync::Arc, time::Duration};

use lapin::{Channel, options::BasicAckOptions};

/// Groups the acks of one channel into `basic.ack` with `multiple`.
///
/// An ack frame per delivery makes lapin's I/O loop the bottleneck, so acks
/// are collected for a moment and sent as one `multiple` ack up to the
/// highest tag below which every delivery of the channel is settled. Nacks
/// and rejects go out one by one, and a tag stays "outstanding" until its
/// nack or reject was sent, so a `multiple` ack never covers it.
///
/// Handlers finish out of order, so an ack often sits above a delivery
/// still being handled. Such an ack is held for one more flush (a few
/// milliseconds), by when the delivery below has usually finished and one
/// `multiple` ack covers both; an ack still blocked after that goes out on
/// its own, so a slow handler never holds up the prefetch window for long.
/// Acks still pending when a channel dies are lost with it: the broker
/// redelivers those messages (a duplicate, which consumers tolerate), never
/// drops them.
#[derive(Debug)]
pub(super) struct AckBatcher {
    channel: Channel,
    state: std::sync::Mutex<AckState>,
    /// Rung by the first ack after a flush.
    wake: Arc<tokio::sync::Notify>,
    /// Rung when `batch` acks wait: they go out without the delay.
    full: Arc<tokio::sync::Notify>,
    batch: usize,
}

impl Drop for AckBatcher {
    fn drop(&mut self) {
        // Lets the flusher task see that the batcher is gone.
        self.wake.notify_one();
    }
}

#[derive(Debug, Default)]
struct AckState {
    /// Handed out, not settled yet.
    outstanding: std::collections::BTreeSet<u64>,
    /// Acked since the last flush.
    acked: std::collections::BTreeSet<u64>,
    /// Acked, but above an outstanding tag at the last flush.
    held: std::collections::BTreeSet<u64>,
}

/// What one flush sends.
#[derive(Debug, Default, PartialEq, Eq)]
struct AckPlan {
    /// One `multiple` ack up to this tag.
    multiple: Option<u64>,
    /// Acks sent on their own (held for a whole flush already).
    single: Vec<u64>,
    /// Whether acks are still held, so another flush must follow.
    holding: bool,
}

impl AckState {
    fn plan(&mut self) -> AckPlan {
        let limit = self.outstanding.first().copied().unwrap_or(u64::MAX);
        let mut acked = std::mem::take(&mut self.acked);
        let blocked = acked.split_off(&limit);
        let mut held = std::mem::take(&mut self.held);
        let still_held = held.split_off(&limit);
        // Everything below the lowest outstanding tag goes in one frame.
        let multiple = acked.last().copied().max(held.last().copied());
        self.held = blocked;
        AckPlan {
            multiple,
            single: still_held.into_iter().collect(),
            holding: !self.held.is_empty(),
        }
    }
}

/// Acks waiting longer than this are sent even if fewer than a batch.
const ACK_DELAY: Duration = Duration::from_millis(2);
/// The most acks one batch waits for.
const ACK_BATCH: usize = 64;

/// How many acks make a batch that goes out at once: a quarter of the
/// prefetch window (at most [`ACK_BATCH`]), so the broker always has room
/// to send more while a batch waits, as a consumer acking every
/// `prefetch / 4` messages with `multiple` has.
/// (Prefetch 0 is an unlimited window.)
fn ack_batch(prefetch: u16) -> usize {
    match prefetch {
        0 => ACK_BATCH,
        n => (usize::from(n) / 4).clamp(1, ACK_BATCH),
    }
}

impl AckBatcher {
    pub(super) fn start(channel: Channel, prefetch: u16) -> Arc<Self> {
        let this = Arc::new(Self {
            channel,
            state: std::sync::Mutex::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            full: Arc::new(tokio::sync::Notify::new()),
            batch: ack_batch(prefetch),
        });
        let weak = Arc::downgrade(&this);
        let (wake, full) = (Arc::clone(&this.wake), Arc::clone(&this.full));
        tokio::spawn(async move {
            let mut holding = false;
            loop {
                if !holding {
                    wake.notified().await;
                }
                // Let more acks join, unless a batch is full meanwhile.
                tokio::select! {
                    () = tokio::time::sleep(ACK_DELAY) => {}
                    () = full.notified() => {}
                }
                let Some(this) = weak.upgrade() else { return };
                if !this.channel.status().connected() {
                    return;
                }
                match this.flush().await {
                    Ok(still_holding) => holding = still_holding,
                    Err(error) => {
                        tracing::debug!(%error, "could not send acks; the broker redelivers");
                        return;
                    }
                }
            }
        });
        this
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn track(&self, tag: u64) {
        self.lock().outstanding.insert(tag);
    }

    /// The tag was settled individually (nack, reject) and the frame sent.
    pub(super) fn untrack(&self, tag: u64) {
        self.lock().outstanding.remove(&tag);
        self.wake.notify_one();
    }

    pub(super) fn ack(&self, tag: u64) {
        let waiting = {
            let mut state = self.lock();
            state.outstanding.remove(&tag);
            state.acked.insert(tag);
            state.acked.len()
        };
        if waiting == 1 {
            self.wake.notify_one();
        }
        if waiting == self.batch {
            self.full.notify_one();
        }
    }

    /// Sends what can be acked now; `Ok(true)` while acks are held back.
    async fn flush(&self) -> Result<bool, lapin::Error> {
        let plan = self.lock().plan();
        if let Some(tag) = plan.multiple {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
        }
        // Pipelined: every frame is queued before any is awaited.
        futures_util::future::try_join_all(plan.single.iter().map(|&tag| {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: false })
        }))
        .await?;
        Ok(plan.holding)
    }

    /// Sends every ack, held ones included (before the channel closes).
    pub(super) async fn flush_all(&self) -> Result<(), lapin::Error> {
        while self.flush().await? {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ACK_BATCH, AckPlan, AckState, ack_batch};

    #[test]
    fn a_batch_is_a_quarter_of_the_prefetch_window_within_bounds() {
        assert_eq!(ack_batch(200), 50);
        assert_eq!(ack_batch(100), 25);
        assert_eq!(ack_batch(1), 1, "tiny windows ack at once");
        assert_eq!(ack_batch(1000), ACK_BATCH);
        assert_eq!(ack_batch(0), ACK_BATCH, "0 is an unlimited window");
    }

    fn state(outstanding: &[u64], acked: &[u64]) -> AckState {
        AckState {
            outstanding: outstanding.iter().copied().collect(),
            acked: acked.iter().copied().collect(),
            held: Default::default(),
        }
    }

    #[test]
    fn acks_below_every_outstanding_tag_go_out_as_one_multiple_ack() {
        let mut s = state(&[], &[3, 1, 2]);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: Some(3),
                single: vec![],
                holding: false
            }
        );
        assert_eq!(s.plan(), AckPlan::default());
    }

    #[test]
    fn an_ack_above_an_outstanding_tag_is_held_then_joins_the_multiple_ack() {
        let mut s = state(&[2], &[1, 3, 4]);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: Some(1),
                single: vec![],
                holding: true
            }
        );
        // Tag 2 finished meanwhile: one multiple ack covers 2, 3 and 4.
        s.outstanding.remove(&2);
        s.acked.insert(2);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: Some(4),
                single: vec![],
                holding: false
            }
        );
    }

    #[test]
    fn an_ack_blocked_for_a_whole_flush_goes_out_alone_and_never_covers_the_slow_tag() {
        let mut s = state(&[2], &[3]);
        assert!(s.plan().holding);
        s.acked.insert(5);
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: None,
                single: vec![3],
                holding: true
            }
        );
        assert_eq!(
            s.plan(),
            AckPlan {
                multiple: None,
                single: vec![5],
                holding: false
            }
        );
        assert!(
            s.outstanding.contains(&2),
            "the slow delivery stays unacked"
        );
    }
}
