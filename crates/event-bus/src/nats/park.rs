//! A consumer group's parking subject (`<parking prefix>.<group>` in the
//! parking stream): putting a copy of a message there with the reason, then
//! telling the server to stop delivering the original (`+TERM`). Reading,
//! replaying and discarding what is parked is
//! [`NatsDeadLetters`](crate::nats::NatsDeadLetters)' job.

use std::time::Instant;

use async_nats::{HeaderMap, Subject, jetstream::AckKind};
use bytes::Bytes;

use super::{connection::Connection, stream, wire};
use crate::error::BusError;

/// The header that carries why a message is in the parking stream.
pub const DEAD_LETTER_REASON_HEADER: &str = wire::REASON_HEADER;

/// What is parked: a delivered message as it came.
#[derive(Debug)]
pub(super) struct Parcel<'a> {
    pub(super) subject: &'a str,
    pub(super) headers: Option<&'a HeaderMap>,
    pub(super) payload: &'a Bytes,
    pub(super) deliveries: u32,
}

/// Publishes a copy to the group's parking subject (awaiting the stream's
/// ack, re-creating the streams if they are gone), then terminates the
/// original delivery.
pub(super) async fn park(
    connection: &Connection,
    parking_subject: &str,
    reply: &Subject,
    parcel: &Parcel<'_>,
    reason: &str,
) -> Result<(), BusError> {
    let headers = wire::parked_headers(parcel.headers, parcel.subject, parcel.deliveries, reason);
    let deadline = Instant::now() + connection.config.publish_timeout;
    loop {
        let sent = connection
            .js
            .publish_with_headers(
                parking_subject.to_owned(),
                headers.clone(),
                parcel.payload.clone(),
            )
            .await;
        let result = match sent {
            Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => break,
            Err(error) if Instant::now() < deadline && !connection.is_closed() => {
                tracing::warn!(%error, parking_subject, "could not park; trying again");
                if error.contains("no responders") || error.contains("stream not found") {
                    let _ = stream::ensure(&connection.js, &connection.config).await;
                }
                tokio::time::sleep(connection.config.reconnect_min_delay).await;
            }
            Err(error) => {
                return Err(BusError::Connection(
                    format!("could not park the message in `{parking_subject}`: {error}").into(),
                ));
            }
        }
    }
    connection
        .client
        .publish(reply.clone(), Bytes::from(AckKind::Term))
        .await
        .map_err(|e| BusError::Connection(Box::new(e)))
}
