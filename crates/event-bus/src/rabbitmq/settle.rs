//! [`RabbitAcker`]: settles one delivery: an ack through the channel's ack
//! batcher, a requeue as a reject, a retry as a copy in the retry queue, a
//! dead letter as a copy in the parking lot.
//!
//! A requeue is a failed delivery, so it is a `basic.reject` (requeue) of
//! that one delivery: RabbitMQ 4.3 and later count only `basic.reject`
//! towards a quorum queue's delivery limit (`basic.nack` with requeue means
//! "not processed" there and counts nothing), earlier versions count both,
//! so with a reject a message that keeps failing reaches the limit on every
//! version. A delivery dropped unsettled was not processed (a handler
//! cancelled, a shutdown) and goes back with a `basic.nack`, which 4.3 does
//! not count against it.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use async_trait::async_trait;
use bytes::Bytes;
use lapin::{
    BasicProperties,
    options::{BasicNackOptions, BasicRejectOptions},
    types::ShortString,
};

use super::{
    ack::AckBatcher,
    amqp,
    connection::{Connector, connection_error},
    park::park,
    topology::{self, GroupQueues},
};
use crate::{Acker, Settlement, error::BusError};

/// What settling needs besides the delivery: where retries and dead letters go.
#[derive(Debug)]
pub(super) struct SettleContext {
    pub(super) connector: Arc<Connector>,
    pub(super) queues: GroupQueues,
}

/// Settles one RabbitMQ delivery on its channel.
pub(super) struct RabbitAcker {
    pub(super) acker: lapin::Acker,
    pub(super) acks: Arc<AckBatcher>,
    pub(super) tag: u64,
    pub(super) context: Arc<SettleContext>,
    pub(super) properties: BasicProperties,
    pub(super) body: Bytes,
    pub(super) routing_key: ShortString,
    pub(super) attempt: u32,
    pub(super) settled: AtomicBool,
}

impl fmt::Debug for RabbitAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitAcker")
            .field("queue", &self.context.queues.queue)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl RabbitAcker {
    fn ack(&self) -> Result<(), BusError> {
        if !self.acker.usable() {
            return Err(BusError::Connection(
                "the channel of this delivery is gone; the broker redelivers it".into(),
            ));
        }
        self.acks.ack(self.tag);
        Ok(())
    }

    /// A failed delivery goes back, counted towards the delivery limit.
    async fn requeue(&self) -> Result<(), BusError> {
        self.acker
            .reject(BasicRejectOptions { requeue: true })
            .await
            .map_err(connection_error)?;
        self.acks.untrack(self.tag);
        Ok(())
    }
}

#[async_trait]
impl Acker for RabbitAcker {
    /// An ack is grouped by the channel's ack batcher: nothing to wait for.
    fn try_settle(&self, settlement: Settlement) -> Result<Result<(), BusError>, Settlement> {
        match settlement {
            Settlement::Ack => Ok(self
                .ack()
                .map(|()| self.settled.store(true, Ordering::Release))),
            other => Err(other),
        }
    }

    async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        match settlement {
            Settlement::Ack => self.ack()?,
            Settlement::Requeue => self.requeue().await?,
            Settlement::RetryAfter(delay) => {
                let ctx = &self.context;
                let delay_ms = topology::retry_delay_ms(delay);
                let deadline = Instant::now() + ctx.connector.config.publish_timeout;
                let live = ctx.connector.get(Some(deadline)).await?;
                let queue = topology::declare_retry_queue(
                    &live.connection,
                    &ctx.connector.config,
                    &ctx.queues,
                    delay_ms,
                )
                .await?;
                let props =
                    amqp::copy_with(&self.properties, &self.routing_key, self.attempt, None);
                ctx.connector
                    .publish(&ShortString::from(""), &queue, true, &self.body, &props)
                    .await?;
                self.ack()?;
            }
            Settlement::DeadLetter(reason) => {
                park(
                    &self.context,
                    &self.properties,
                    &self.body,
                    &self.routing_key,
                    self.attempt,
                    &reason,
                )
                .await?;
                self.ack()?;
            }
            // Settlement is non_exhaustive for callers; a future variant hands the message back.
            #[allow(unreachable_patterns)]
            _ => self.requeue().await?,
        }
        self.settled.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for RabbitAcker {
    fn drop(&mut self) {
        // Dropped unsettled: hand it back now rather than when the channel closes.
        if !self.settled.load(Ordering::Acquire)
            && self.acker.usable()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (acker, acks, tag) = (self.acker.clone(), Arc::clone(&self.acks), self.tag);
            runtime.spawn(async move {
                if acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .is_ok()
                {
                    acks.untrack(tag);
                }
            });
        }
    }
}
