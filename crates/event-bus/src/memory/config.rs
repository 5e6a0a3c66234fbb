//! [`MemoryConfig`]: everything a user sets on a [`MemoryBus`](super::MemoryBus).

/// Settings of a [`MemoryBus`](super::MemoryBus).
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryConfig {
    pub(super) queue_capacity: usize,
    pub(super) max_deliveries: Option<u32>,
    pub(super) drop_unroutable: bool,
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
    /// with [`BusError::Unroutable`](crate::BusError::Unroutable) as the brokers' mandatory publishing does.
    pub fn drop_unroutable_events_silently(mut self) -> Self {
        self.drop_unroutable = true;
        self
    }
}
