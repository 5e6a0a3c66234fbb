//! [`NatsPublisher`]: JetStream publishing with acks awaited in a window,
//! the event id as `Nats-Msg-Id`, retried across reconnects and a lost stream.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use async_nats::{
    HeaderMap, Subject,
    jetstream::context::{PublishAckFuture, PublishErrorKind},
};
use async_trait::async_trait;
use futures_util::future::try_join_all;

use super::{connection::Connection, stream, wire};
use crate::{Health, Publisher, RawEvent, error::BusError};

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

/// One event to publish, kept until acked so that it can be sent again.
/// The headers of its first send move into the client (a send again builds
/// them again, rather than every publish paying for a copy).
struct Outgoing {
    subject: Subject,
    event: RawEvent,
}

/// Sends one message; the future resolves with the stream's ack.
async fn send(
    connection: &Connection,
    msg: &Outgoing,
    headers: HeaderMap,
) -> Result<PublishAckFuture, BusError> {
    connection
        .js
        .publish_with_headers(msg.subject.clone(), headers, msg.event.data.clone())
        .await
        .map_err(|e| classify(connection, e.kind(), &e.to_string(), msg))
}

/// Sends one message again (after a lost ack), with its headers built again.
async fn send_again(connection: &Connection, msg: &Outgoing) -> Result<PublishAckFuture, BusError> {
    send(connection, msg, wire::headers(&msg.event)?).await
}

fn classify(
    connection: &Connection,
    kind: PublishErrorKind,
    error: &str,
    msg: &Outgoing,
) -> BusError {
    match kind {
        PublishErrorKind::MaxPayloadExceeded => BusError::Rejected(format!(
            "the message of {} bytes (with headers) is larger than the server allows ({} bytes): {error}",
            msg.event.data.len(),
            connection.client.max_payload()
        )),
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            BusError::Rejected(error.to_owned())
        }
        _ => BusError::Connection(format!("publish to `{}` failed: {error}", msg.subject).into()),
    }
}

/// Whether a failed publish is worth sending again (the connection or the stream).
fn retryable(error: &BusError) -> bool {
    matches!(error, BusError::Connection(_))
}

/// Awaits the ack of a message already sent; on a lost connection, a
/// timeout or a missing stream, sends it again until the deadline.
async fn confirm(
    connection: &Connection,
    msg: &Outgoing,
    first: Result<PublishAckFuture, BusError>,
    deadline: Instant,
) -> Result<(), BusError> {
    let mut pending = first;
    let mut delays = connection.config.reconnect_min_delay;
    loop {
        let outcome = match pending {
            Ok(ack) => match ack.await {
                Ok(ack) if ack.duplicate => {
                    tracing::debug!(subject = %msg.subject, "the stream already had this event");
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) => Err((e.kind(), e.to_string())),
            },
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => Err((PublishErrorKind::Other, e.to_string())),
        };
        let (kind, error) = match outcome {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        let error = classify(connection, kind, &error, msg);
        if !retryable(&error) {
            return Err(error);
        }
        if connection.is_closed() {
            return Err(BusError::Closed);
        }
        if Instant::now() >= deadline {
            return Err(error);
        }
        tracing::warn!(subject = %msg.subject, %error, "publish not acked; sending it again");
        // The rare paths are boxed: inline, their futures would make every
        // publish's future (allocated and moved once per event) several times larger.
        if kind == PublishErrorKind::StreamNotFound || error.to_string().contains("no responders") {
            // The stream is gone (deleted by an operator): create it again.
            if let Err(e) = Box::pin(stream::ensure(&connection.js, &connection.config)).await {
                tracing::error!(error = %e, "cannot re-create the streams");
            }
        }
        Box::pin(tokio::time::sleep(
            delays.min(deadline.saturating_duration_since(Instant::now())),
        ))
        .await;
        delays = (delays * 2).min(connection.config.reconnect_max_delay);
        pending = Box::pin(send_again(connection, msg)).await;
    }
}

#[async_trait]
impl Publisher for NatsPublisher {
    async fn publish(&self, event: RawEvent) -> Result<(), BusError> {
        self.check_open()?;
        let (msg, headers) = self.outgoing(event)?;
        let deadline = Instant::now() + self.connection.config.publish_timeout;
        // Boxed: the client's send future is large, and only needed briefly;
        // the publish future lives (1,000 of them at once) until the ack.
        let first = Box::pin(send(&self.connection, &msg, headers)).await;
        confirm(&self.connection, &msg, first, deadline).await
    }

    /// Sends every event (up to the publish window ahead), then awaits every ack.
    async fn publish_all(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        self.check_open()?;
        let msgs = events
            .into_iter()
            .map(|e| self.outgoing(e))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + self.connection.config.publish_timeout;
        let connection = &self.connection;
        try_join_all(msgs.into_iter().map(|(msg, headers)| async move {
            let first = send(connection, &msg, headers).await;
            confirm(connection, &msg, first, deadline).await
        }))
        .await?;
        Ok(())
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
