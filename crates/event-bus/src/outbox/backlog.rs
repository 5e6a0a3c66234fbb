//! [`Backlog`]: how much the relay has left to do.

use std::time::Duration;

use sqlx::{PgPool, Row as _};

use super::{
    enqueue::{Inner, Outbox},
    error::OutboxError,
};
use crate::Codec;

/// How much the relay has left to do.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backlog {
    /// Unsent rows that are not parked.
    pub pending: u64,
    /// Parked rows.
    pub parked: u64,
    /// How long ago the oldest pending row was written.
    pub oldest_pending_age: Option<Duration>,
}

impl<C: Codec> Outbox<C> {
    /// Counts of unsent and parked rows, and the age of the oldest unsent one.
    pub async fn backlog(&self, pool: &PgPool) -> Result<Backlog, OutboxError> {
        self.inner.backlog(pool).await
    }
}

impl Inner {
    pub(crate) async fn backlog(&self, pool: &PgPool) -> Result<Backlog, OutboxError> {
        let sql = format!(
            "SELECT \
               count(*) FILTER (WHERE parked_at IS NULL) AS pending, \
               count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked, \
               extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE parked_at IS NULL))::float8 AS age \
             FROM {} WHERE sent_at IS NULL",
            self.table.qualified()
        );
        let row = sqlx::query(&sql).fetch_one(pool).await?;
        let pending: i64 = row.try_get("pending")?;
        let parked: i64 = row.try_get("parked")?;
        let age: Option<f64> = row.try_get("age")?;
        Ok(Backlog {
            pending: u64::try_from(pending).unwrap_or_default(),
            parked: u64::try_from(parked).unwrap_or_default(),
            oldest_pending_age: age.map(|s| Duration::from_secs_f64(s.max(0.0))),
        })
    }
}
