//! [`NatsDeadLetters`]: a group's parked messages (its subject in the
//! parking stream) as a [`DeadLetterQueue`]: listed by stream sequence,
//! replayed to the group's replay subject (its own consumers only), discarded
//! by deleting them from the stream.

use std::sync::Arc;

use async_nats::jetstream::{
    ErrorCode,
    context::GetStreamErrorKind,
    message::StreamMessage,
    stream::{LastRawMessageErrorKind, Stream},
};
use async_trait::async_trait;

use super::{connection::Connection, stream::connection_error, wire};
use crate::{DeadLetter, DeadLetterId, DeadLetterQueue, UnreadableMessage, error::BusError};

/// One group's dead letters on NATS (see [`NatsBus::dead_letter_queue`](crate::nats::NatsBus::dead_letter_queue)).
#[derive(Debug, Clone)]
pub struct NatsDeadLetters {
    connection: Arc<Connection>,
    group: String,
    subject: String,
}

impl NatsDeadLetters {
    pub(crate) fn new(connection: Arc<Connection>, group: &str) -> Self {
        let subject = wire::parking_subject(&connection.config.parking_prefix, group);
        Self {
            connection,
            group: group.to_owned(),
            subject,
        }
    }

    async fn stream(&self) -> Result<Option<Stream>, BusError> {
        let name = self.connection.config.parking_stream_name();
        match self.connection.js.get_stream(&name).await {
            Ok(stream) => Ok(Some(stream)),
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
                Ok(None)
            }
            Err(e) => Err(connection_error(e)),
        }
    }

    /// The group's parked message at or after `sequence`.
    async fn next_from(
        &self,
        stream: &Stream,
        sequence: u64,
    ) -> Result<Option<StreamMessage>, BusError> {
        match stream
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(self.subject.clone())
            .send()
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::NO_MESSAGE_FOUND) => {
                Ok(None)
            }
            Err(e) => Err(connection_error(e)),
        }
    }

    /// The group's parked message with this id, if it is still there.
    async fn find(
        &self,
        stream: &Stream,
        id: &DeadLetterId,
    ) -> Result<Option<StreamMessage>, BusError> {
        let Ok(sequence) = id.as_str().parse::<u64>() else {
            return Ok(None);
        };
        Ok(self
            .next_from(stream, sequence)
            .await?
            .filter(|m| m.sequence == sequence))
    }

    fn dead_letter(message: &StreamMessage) -> DeadLetter {
        let headers = Some(&message.headers);
        let reason = wire::text(headers, wire::REASON_HEADER)
            .unwrap_or_default()
            .to_owned();
        let deliveries = wire::text(headers, wire::DELIVERIES_HEADER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let original = wire::replayed_headers(headers);
        let event = wire::from_nats(Some(&original), message.payload.clone())
            .map_err(|error| UnreadableMessage::new(error, message.payload.clone()));
        DeadLetter::new(message.sequence.to_string(), event, reason, deliveries)
    }

    async fn delete(stream: &Stream, sequence: u64) -> Result<bool, BusError> {
        match stream.delete_message(sequence).await {
            Ok(deleted) => Ok(deleted),
            Err(e) if e.to_string().contains("no message found") => Ok(false),
            Err(e) => Err(connection_error(e)),
        }
    }
}

#[async_trait]
impl DeadLetterQueue for NatsDeadLetters {
    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let Some(stream) = self.stream().await? else {
            return Ok(Vec::new());
        };
        let mut dead = Vec::new();
        let mut sequence = 1;
        while dead.len() < limit {
            let Some(message) = self.next_from(&stream, sequence).await? else {
                break;
            };
            sequence = message.sequence + 1;
            dead.push(Self::dead_letter(&message));
        }
        Ok(dead)
    }

    async fn get(&self, id: &DeadLetterId) -> Result<Option<DeadLetter>, BusError> {
        let Some(stream) = self.stream().await? else {
            return Ok(None);
        };
        Ok(self
            .find(&stream, id)
            .await?
            .as_ref()
            .map(Self::dead_letter))
    }

    /// Publishes each to the group's replay subject (confirmed, as a new
    /// message: delivered from one again), then deletes the parked copy.
    async fn replay(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        let Some(stream) = self.stream().await? else {
            return Ok(0);
        };
        let config = &self.connection.config;
        let target = wire::replay_subject(&config.subject_prefix, &self.group);
        let mut replayed = 0;
        for id in ids {
            let Some(message) = self.find(&stream, id).await? else {
                continue;
            };
            let headers = wire::replayed_headers(Some(&message.headers));
            self.connection
                .js
                .publish_with_headers(target.clone(), headers, message.payload.clone())
                .await
                .map_err(connection_error)?
                .await
                .map_err(|e| BusError::Rejected(format!("replay of dead letter {id}: {e}")))?;
            if Self::delete(&stream, message.sequence).await? {
                replayed += 1;
            }
        }
        Ok(replayed)
    }

    async fn discard(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        let Some(stream) = self.stream().await? else {
            return Ok(0);
        };
        let mut discarded = 0;
        for id in ids {
            if let Some(message) = self.find(&stream, id).await?
                && Self::delete(&stream, message.sequence).await?
            {
                discarded += 1;
            }
        }
        Ok(discarded)
    }
}
