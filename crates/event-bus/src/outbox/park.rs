//! Parked rows: the events that can never be published as they are, why,
//! and putting them back in line.

use sqlx::{PgPool, Row as _};

use super::{enqueue::Outbox, error::OutboxError};
use crate::Codec;

/// A row that can never be published as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedEvent {
    /// The row's sequence number (for [`Outbox::requeue_parked`]).
    pub seq: i64,
    /// The event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The subject.
    pub subject: Option<String>,
    /// Why the row was parked.
    pub reason: String,
}

impl<C: Codec> Outbox<C> {
    /// Parked rows, oldest first, at most `limit`.
    pub async fn parked(&self, pool: &PgPool, limit: u32) -> Result<Vec<ParkedEvent>, OutboxError> {
        let sql = format!(
            "SELECT seq, event_id, event_type, subject, coalesce(park_reason, '') AS reason \
             FROM {} WHERE parked_at IS NOT NULL ORDER BY seq LIMIT $1",
            self.inner.table.qualified()
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ParkedEvent {
                    seq: row.try_get("seq")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    subject: row.try_get("subject")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Puts parked rows back in line (after fixing what parked them); returns
    /// how many were requeued.
    pub async fn requeue_parked(&self, pool: &PgPool, seqs: &[i64]) -> Result<u64, OutboxError> {
        let sql = format!(
            "UPDATE {} SET parked_at = NULL, park_reason = NULL, attempts = 0, \
             next_attempt_at = NULL, last_error = NULL \
             WHERE seq = ANY($1) AND parked_at IS NOT NULL",
            self.inner.table.qualified()
        );
        let done = sqlx::query(&sql).bind(seqs).execute(pool).await?;
        Ok(done.rows_affected())
    }
}
