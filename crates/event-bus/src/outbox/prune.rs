//! Pruning sent rows once their retention has passed.

use std::time::Duration;

use sqlx::PgPool;

use super::{
    enqueue::{Inner, Outbox},
    error::OutboxError,
};
use crate::Codec;

/// The most rows one prune statement deletes.
const PRUNE_CHUNK: u64 = 1_000;

impl<C: Codec> Outbox<C> {
    /// Deletes sent rows older than `older_than`; returns how many.
    pub async fn prune_sent(
        &self,
        pool: &PgPool,
        older_than: Duration,
    ) -> Result<u64, OutboxError> {
        self.inner.prune_sent(pool, older_than).await
    }
}

impl Inner {
    /// Deletes sent rows older than `older_than`, in chunks; returns how many.
    pub(crate) async fn prune_sent(
        &self,
        pool: &PgPool,
        older_than: Duration,
    ) -> Result<u64, OutboxError> {
        let sql = format!(
            "DELETE FROM {t} WHERE seq IN (SELECT seq FROM {t} \
             WHERE sent_at IS NOT NULL AND sent_at < clock_timestamp() - make_interval(secs => $1) \
             LIMIT {chunk} FOR UPDATE SKIP LOCKED)",
            t = self.table.qualified(),
            chunk = PRUNE_CHUNK
        );
        let mut total = 0;
        loop {
            // Chunks keep each delete's locks and WAL small, and let a busy
            // relay's marks interleave with them.
            let done = sqlx::query(&sql)
                .bind(older_than.as_secs_f64())
                .execute(pool)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < PRUNE_CHUNK {
                break;
            }
        }
        Ok(total)
    }
}
