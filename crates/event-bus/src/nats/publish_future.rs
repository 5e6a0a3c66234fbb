//! [`PublishFuture`]: one NATS publish on its way, from the send to the
//! stream's ack, sent again while it is lost.
//!
//! A publisher holds one of these per event until its ack, a window of them
//! at once (1,024 by default), so the future is written out to stay small:
//! the message, the deadline and one boxed step. Written as an `async fn`, it
//! was 850 bytes (the compiler keeps an argument and its moved copy apart,
//! and the awaited results beside them); publishing through it reached 0.85x
//! of async-nats alone in `benches/nats.rs`, with fewer instructions, and a
//! kilobyte of padding added to async-nats' own in-flight futures cost it as
//! much. At 320 bytes it is no longer the cost.

use std::{
    future::{Future, IntoFuture},
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use async_nats::{
    HeaderMap, Subject,
    jetstream::{
        context::{PublishAckFuture, PublishError, PublishErrorKind},
        publish::PublishAck,
    },
};
use futures_util::future::BoxFuture;

use super::{connection::Connection, stream, wire};
use crate::{RawEvent, error::BusError};

/// One event to publish, kept until acked so that it can be sent again.
/// The headers of its first send move into the client (a send again builds
/// them again, rather than every publish paying for a copy).
#[derive(Clone)]
pub(super) struct Outgoing {
    pub(super) subject: Subject,
    pub(super) event: RawEvent,
}

/// A publish: resolves with `Ok` once the stream acked the message, or with
/// the error that ended it (refused, or still not acked at the publish
/// timeout). Sends nothing until polled.
#[must_use = "futures do nothing unless polled"]
pub(super) struct PublishFuture<'a> {
    connection: &'a Connection,
    msg: Outgoing,
    /// When sending again stops: the publish timeout after the publish began.
    deadline: Instant,
    step: Step<'a>,
}

enum Step<'a> {
    /// The first send, until the client took the message.
    Send(BoxFuture<'a, Result<PublishAckFuture, PublishError>>),
    /// Waiting for the stream's ack.
    Ack(BoxFuture<'static, Result<PublishAck, PublishError>>),
    /// The rare path: the message was lost, and is sent again.
    Resend(BoxFuture<'a, Result<(), BusError>>),
    Done,
}

impl<'a> PublishFuture<'a> {
    pub(super) fn new(connection: &'a Connection, msg: Outgoing, headers: HeaderMap) -> Self {
        let send = connection.js.publish_with_headers(
            msg.subject.clone(),
            headers,
            msg.event.data.clone(),
        );
        Self {
            connection,
            deadline: Instant::now() + connection.config.publish_timeout,
            step: Step::Send(Box::pin(send)),
            msg,
        }
    }

    /// The step after a failure: [`resend`], which ends at once if it is final.
    fn after(&self, failure: Unacked) -> Step<'a> {
        Step::Resend(Box::pin(resend(
            self.connection,
            self.msg.clone(),
            failure,
            self.deadline,
        )))
    }
}

impl Future for PublishFuture<'_> {
    type Output = Result<(), BusError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.step {
                Step::Send(send) => {
                    this.step = match ready!(send.as_mut().poll(cx)) {
                        Ok(ack) => Step::Ack(ack.into_future()),
                        Err(e) => this.after(unsent(classify(this.connection, &e, &this.msg))),
                    };
                }
                Step::Ack(ack) => match ready!(ack.as_mut().poll(cx)) {
                    Ok(ack) => {
                        if ack.duplicate {
                            tracing::debug!(subject = %this.msg.subject, "the stream already had this event");
                        }
                        this.step = Step::Done;
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) => this.step = this.after(Unacked::Lost(e.kind(), e.to_string())),
                },
                Step::Resend(resend) => {
                    let outcome = ready!(resend.as_mut().poll(cx));
                    this.step = Step::Done;
                    return Poll::Ready(outcome);
                }
                Step::Done => panic!("`PublishFuture` polled after completion"),
            }
        }
    }
}

/// Why a message is not acked: for good, or lost on the way (the
/// connection, a timeout, the stream) and worth sending again.
enum Unacked {
    Final(BusError),
    Lost(PublishErrorKind, String),
}

/// A send that failed: lost if the connection failed, else final.
fn unsent(error: BusError) -> Unacked {
    if retryable(&error) {
        Unacked::Lost(PublishErrorKind::Other, error.to_string())
    } else {
        Unacked::Final(error)
    }
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
        .map_err(|e| classify(connection, &e, msg))
}

/// Sends a message that was not acked again, with backoff, until it is
/// acked, the failure is final, the bus closes or the deadline passes. On a
/// missing stream, creates it again first.
async fn resend(
    connection: &Connection,
    msg: Outgoing,
    mut unacked: Unacked,
    deadline: Instant,
) -> Result<(), BusError> {
    let mut delays = connection.config.reconnect_min_delay;
    loop {
        let (kind, error) = match unacked {
            Unacked::Final(error) => return Err(error),
            Unacked::Lost(kind, error) => (kind, error),
        };
        let error = classify_kind(connection, kind, &error, &msg);
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
        if kind == PublishErrorKind::StreamNotFound || error.to_string().contains("no responders") {
            // The stream is gone (deleted by an operator): create it again.
            if let Err(e) = stream::ensure(&connection.js, &connection.config).await {
                tracing::error!(error = %e, "cannot re-create the streams");
            }
        }
        tokio::time::sleep(delays.min(deadline.saturating_duration_since(Instant::now()))).await;
        delays = (delays * 2).min(connection.config.reconnect_max_delay);
        unacked = match send(connection, &msg, wire::headers(&msg.event)?).await {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => Unacked::Lost(e.kind(), e.to_string()),
            },
            Err(e) => unsent(e),
        };
    }
}

fn classify(connection: &Connection, error: &PublishError, msg: &Outgoing) -> BusError {
    classify_kind(connection, error.kind(), &error.to_string(), msg)
}

fn classify_kind(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a publish holds while its ack is on its way, a window of them
    /// at once: it stays small (see the module's text).
    #[test]
    fn a_publish_in_flight_stays_small() {
        assert!(
            std::mem::size_of::<PublishFuture<'static>>() <= 384,
            "{} bytes",
            std::mem::size_of::<PublishFuture<'static>>()
        );
    }
}
