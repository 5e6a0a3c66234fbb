//! Parked rows as dead letters: the events the relay can never publish as
//! they are ([`OutboxDeadLetters`]), and putting them back in line.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{PgPool, Row as _, postgres::PgRow};

use super::{
    enqueue::{Inner, Outbox},
    error::OutboxError,
};
use crate::{
    BusError, Codec, RawEvent,
    dead_letter::{DeadLetter, DeadLetterId, DeadLetterQueue, UnreadableMessage},
    wire,
};

impl<C: Codec> Outbox<C> {
    /// The parked rows as a [`DeadLetterQueue`]: list them, replay them
    /// (the relay publishes them again) or discard them (the rows are
    /// deleted). Ids are the rows' `seq`.
    pub fn dead_letter_queue(&self, pool: PgPool) -> OutboxDeadLetters {
        OutboxDeadLetters {
            inner: Arc::clone(self.inner()),
            pool,
        }
    }
}

/// The parked rows of one outbox table, from
/// [`Outbox::dead_letter_queue`]: rows the broker kept refusing
/// ([`OutboxRelay::park_after`](super::OutboxRelay::park_after)) or that can
/// never be an event as written.
///
/// - **Ids** are the rows' `seq` (as text).
/// - **Deliveries** count the publishes the broker refused.
/// - **Replay** puts the rows back in line with their attempts reset and
///   wakes the relays; they are published in `seq` order like any row, so
///   a replayed event comes after the subject's later events that went out
///   meanwhile.
/// - **Discard** deletes the rows.
#[derive(Clone)]
pub struct OutboxDeadLetters {
    inner: Arc<Inner>,
    pool: PgPool,
}

impl fmt::Debug for OutboxDeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxDeadLetters")
            .field("table", &self.inner.table.qualified())
            .finish_non_exhaustive()
    }
}

impl OutboxDeadLetters {
    async fn parked_rows(
        &self,
        limit: usize,
        seq: Option<i64>,
    ) -> Result<Vec<DeadLetter>, OutboxError> {
        let sql = format!(
            "SELECT seq, attributes::text AS attributes, data, attempts, coalesce(park_reason, '') AS reason \
             FROM {} WHERE parked_at IS NOT NULL AND ($2::bigint IS NULL OR seq = $2) \
             ORDER BY seq LIMIT $1",
            self.inner.table.qualified()
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(&sql)
            .bind(limit)
            .bind(seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| dead_letter(row).map_err(OutboxError::from))
            .collect()
    }
}

/// A parked row as a [`DeadLetter`]: its event as written, or why the
/// stored attributes are no event.
fn dead_letter(row: &PgRow) -> Result<DeadLetter, sqlx::Error> {
    let seq: i64 = row.try_get("seq")?;
    let attributes: String = row.try_get("attributes")?;
    let data = Bytes::from(row.try_get::<Vec<u8>, _>("data")?);
    let attempts: i32 = row.try_get("attempts")?;
    let event = wire::from_structured(attributes.as_bytes())
        .map(|header| RawEvent::new(header.attributes, data.clone()))
        .map_err(|e| {
            UnreadableMessage::new(
                format!("the attributes are not a valid cloudevent: {e}"),
                data,
            )
        });
    Ok(DeadLetter::new(
        seq.to_string(),
        event,
        row.try_get::<String, _>("reason")?,
        u32::try_from(attempts).unwrap_or(0),
    ))
}

/// The row numbers among `ids`; an id that is no row number names no row.
fn seqs(ids: &[DeadLetterId]) -> Vec<i64> {
    ids.iter()
        .filter_map(|id| id.as_str().parse().ok())
        .collect()
}

fn store_error(error: impl Into<OutboxError>) -> BusError {
    BusError::Store(Box::new(error.into()))
}

#[async_trait]
impl DeadLetterQueue for OutboxDeadLetters {
    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        self.parked_rows(limit, None).await.map_err(store_error)
    }

    async fn get(&self, id: &DeadLetterId) -> Result<Option<DeadLetter>, BusError> {
        let Ok(seq) = id.as_str().parse::<i64>() else {
            return Ok(None);
        };
        let mut rows = self.parked_rows(1, Some(seq)).await.map_err(store_error)?;
        Ok(rows.pop())
    }

    async fn replay(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        let table = &self.inner.table;
        let sql = format!(
            "UPDATE {} SET parked_at = NULL, park_reason = NULL, attempts = 0, \
             next_attempt_at = NULL, last_error = NULL \
             WHERE seq = ANY($1) AND parked_at IS NOT NULL",
            table.qualified()
        );
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let done = sqlx::query(&sql)
            .bind(seqs(ids))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        if done.rows_affected() > 0 {
            // Delivered at commit: the relays look again at once.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(table.label())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(0))
    }

    async fn discard(&self, ids: &[DeadLetterId]) -> Result<usize, BusError> {
        let sql = format!(
            "DELETE FROM {} WHERE seq = ANY($1) AND parked_at IS NOT NULL",
            self.inner.table.qualified()
        );
        let done = sqlx::query(&sql)
            .bind(seqs(ids))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(0))
    }
}
