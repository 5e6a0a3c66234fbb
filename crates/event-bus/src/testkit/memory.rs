//! [`MemoryTestBackend`]: the in-memory backend under the kit.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Capabilities, TestBackend};
use crate::{DeadLetterQueue, Publisher, Subscriber, memory::MemoryBus};

/// The in-memory backend under the kit.
#[derive(Debug, Clone, Default)]
pub struct MemoryTestBackend {
    bus: MemoryBus,
}

impl MemoryTestBackend {
    /// A fresh bus with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bus, to inspect it.
    pub fn bus(&self) -> &MemoryBus {
        &self.bus
    }
}

#[async_trait]
impl TestBackend for MemoryTestBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities::none().with_ordering_per_subject()
    }

    async fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::new(self.bus.publisher())
    }

    async fn subscriber(&self) -> Arc<dyn Subscriber> {
        Arc::new(self.bus.subscriber())
    }

    fn dead_letter_queue(&self, group: &str) -> Arc<dyn DeadLetterQueue> {
        Arc::new(self.bus.dead_letter_queue(group))
    }
}
