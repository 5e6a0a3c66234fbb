//! [`NatsAcker`]: settles one delivery: an ack through the subscription's
//! ack queue, a requeue as a NAK, a retry as a NAK with delay, a dead letter
//! as a copy in the parking stream and a `+TERM`.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use async_nats::{HeaderMap, Subject, jetstream::AckKind};
use async_trait::async_trait;
use bytes::Bytes;

use super::{
    ack::{AckQueue, InFlight},
    connection::Connection,
    park::{Parcel, park},
};
use crate::{Acker, Settlement, error::BusError};

/// What settling needs besides the delivery, shared by a subscription's deliveries.
#[derive(Debug)]
pub(super) struct SettleContext {
    pub(super) connection: Arc<Connection>,
    pub(super) parking_subject: String,
    pub(super) acks: AckQueue,
    pub(super) in_flight: Arc<InFlight>,
}

impl SettleContext {
    /// Sends a settlement that needs no answer (NAK, NAK with delay).
    pub(super) async fn send(&self, reply: &Subject, kind: AckKind) -> Result<(), BusError> {
        self.connection
            .client
            .publish(reply.clone(), Bytes::from(kind))
            .await
            .map_err(|e| BusError::Connection(Box::new(e)))
    }
}

/// Settles one JetStream delivery.
pub(super) struct NatsAcker {
    pub(super) context: Arc<SettleContext>,
    pub(super) reply: Subject,
    pub(super) token: u64,
    pub(super) subject: Subject,
    pub(super) headers: Option<HeaderMap>,
    pub(super) payload: Bytes,
    pub(super) attempt: u32,
    pub(super) settled: AtomicBool,
}

impl fmt::Debug for NatsAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAcker")
            .field("subject", &self.subject)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl NatsAcker {
    fn done(&self) {
        self.settled.store(true, Ordering::Release);
        self.context.in_flight.remove(self.token);
    }

    fn ack(&self) -> Result<(), BusError> {
        if self.context.acks.ack(self.reply.clone()) {
            self.done();
            Ok(())
        } else {
            Err(BusError::Closed)
        }
    }
}

#[async_trait]
impl Acker for NatsAcker {
    /// An ack is queued for the subscription's ack task: nothing to wait for.
    fn try_settle(&self, settlement: Settlement) -> Result<Result<(), BusError>, Settlement> {
        match settlement {
            Settlement::Ack => Ok(self.ack()),
            other => Err(other),
        }
    }

    async fn settle(&self, settlement: Settlement) -> Result<(), BusError> {
        match settlement {
            Settlement::Ack => return self.ack(),
            Settlement::Requeue => self.context.send(&self.reply, AckKind::Nak(None)).await?,
            Settlement::RetryAfter(delay) => {
                self.context
                    .send(&self.reply, AckKind::Nak(Some(delay)))
                    .await?;
            }
            Settlement::DeadLetter(reason) => {
                let parcel = Parcel {
                    subject: self.subject.as_str(),
                    headers: self.headers.as_ref(),
                    payload: &self.payload,
                    deliveries: self.attempt,
                };
                park(
                    &self.context.connection,
                    &self.context.parking_subject,
                    &self.reply,
                    &parcel,
                    &reason,
                )
                .await?;
            }
            // Settlement is non_exhaustive for callers; a future variant hands the message back.
            #[allow(unreachable_patterns)]
            _ => self.context.send(&self.reply, AckKind::Nak(None)).await?,
        }
        self.done();
        Ok(())
    }
}

impl Drop for NatsAcker {
    fn drop(&mut self) {
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        // Dropped unsettled: hand it back now rather than after `ack_wait`.
        self.context.in_flight.remove(self.token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (context, reply) = (Arc::clone(&self.context), self.reply.clone());
            runtime.spawn(async move {
                let _ = context.send(&reply, AckKind::Nak(None)).await;
            });
        }
    }
}
