//! [`NatsPublisher`]: JetStream publishing with acks awaited in a window,
//! the event id as `Nats-Msg-Id`, retried across reconnects and a lost stream.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use async_nats::{HeaderMap, Subject};
use async_trait::async_trait;
use futures_util::future::try_join_all;

use super::{
    connection::Connection,
    publish_future::{Outgoing, PublishFuture},
    wire,
};
use crate::{Health, Publisher, RawEvent, bus::TraitFuture, error::BusError};

/// The [`Publisher`] of a [`NatsBus`](crate::nats::NatsBus).
///
/// Each publish goes to `<prefix>.<type>` with the event's attributes as
/// `ce-` headers and its id as `Nats-Msg-Id`, and returns `Ok` once the
/// stream acked it. Many publishes are in flight at once (from many tasks,
/// or [`publish_all`](Publisher::publish_all)), up to the configured
/// [publish window](crate::nats::NatsConfig::publish_window). A publish that
/// times out or loses its connection is sent again with the same
/// `Nats-Msg-Id` (the stream drops the duplicate) until the publish timeout;
/// one that finds no stream re-creates it first. A message larger than the
/// server's `max_payload` is refused with [`BusError::Rejected`].
#[derive(Debug)]
pub struct NatsPublisher {
    connection: Arc<Connection>,
    closed: AtomicBool,
    /// The subject of each event type published so far (a service has a
    /// handful): checked and formatted once, then shared with each send.
    subjects: RwLock<HashMap<String, Subject>>,
}

/// Event types whose subjects are kept; past it, subjects are formatted per publish.
const MAX_CACHED_SUBJECTS: usize = 1024;

impl NatsPublisher {
    pub(crate) fn new(connection: Arc<Connection>) -> Self {
        Self {
            connection,
            closed: AtomicBool::new(false),
            subjects: RwLock::default(),
        }
    }

    /// The subject events of `event_type` go to.
    fn subject(&self, event_type: &str) -> Result<Subject, BusError> {
        if let Some(subject) = self
            .subjects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(event_type)
        {
            return Ok(subject.clone());
        }
        let subject = Subject::from(wire::event_subject(
            &self.connection.config.subject_prefix,
            event_type,
        )?);
        let mut subjects = self
            .subjects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if subjects.len() < MAX_CACHED_SUBJECTS {
            subjects.insert(event_type.to_owned(), subject.clone());
        }
        Ok(subject)
    }

    /// An event checked, with the headers of its first send.
    fn outgoing(&self, event: RawEvent) -> Result<(Outgoing, HeaderMap), BusError> {
        event.attributes.validate()?;
        let subject = self.subject(event.event_type())?;
        let headers = wire::headers(&event)?;
        Ok((Outgoing { subject, event }, headers))
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) || self.connection.is_closed() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }
}

// `publish` and `publish_all` are written out: with `async fn`, the future
// would also hold the events they were given, beside the messages made
// from them, until the last ack.
#[async_trait]
impl Publisher for NatsPublisher {
    fn publish<'a, 'f>(&'a self, event: RawEvent) -> TraitFuture<'f, Result<(), BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        match self.check_open().and_then(|()| self.outgoing(event)) {
            Ok((msg, headers)) => Box::pin(PublishFuture::new(&self.connection, msg, headers)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// Sends every event (up to the publish window ahead), then awaits every ack.
    fn publish_all<'a, 'f>(&'a self, events: Vec<RawEvent>) -> TraitFuture<'f, Result<(), BusError>>
    where
        'a: 'f,
        Self: 'f,
    {
        let msgs = self.check_open().and_then(|()| {
            events
                .into_iter()
                .map(|e| self.outgoing(e))
                .collect::<Result<Vec<_>, _>>()
        });
        let connection = &self.connection;
        Box::pin(async move {
            try_join_all(
                msgs?
                    .into_iter()
                    .map(|(msg, headers)| PublishFuture::new(connection, msg, headers)),
            )
            .await?;
            Ok(())
        })
    }

    async fn close(&self) -> Result<(), BusError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn health(&self) -> Health {
        if self.closed.load(Ordering::Acquire) {
            Health::down("publisher closed")
        } else {
            self.connection.health()
        }
    }

    fn messaging(&self) -> crate::messaging::Messaging {
        // The destination is the subject's last part, the event type.
        crate::messaging::Messaging::new("nats")
    }
}
