//! [`Inbox`]: the table of processed events, and recording into it.

use std::{fmt, sync::Arc, time::Duration};

use sqlx::PgPool;

use super::tx::InboxTransaction;
use crate::{
    Attributes,
    outbox::{OutboxError, TableName, migrate::run_migration},
};

/// Counter: deliveries skipped because the inbox had already processed them.
pub const METRIC_DUPLICATES: &str = "tessera_inbox_duplicates_total";
/// Counter: inbox rows pruned.
pub const METRIC_PRUNED: &str = "tessera_inbox_pruned_total";

/// Records processed events per consumer group, in the handler's transaction.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    pool: PgPool,
    table: TableName,
    insert_sql: Arc<str>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox in the table `tessera.inbox`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_table(
            pool,
            TableName::new("tessera", "inbox").expect("valid default name"),
        )
    }

    /// An inbox in `table`.
    pub fn with_table(pool: PgPool, table: TableName) -> Self {
        let insert_sql = format!(
            "INSERT INTO {} (consumer_group, source, event_id, event_type) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            table.qualified()
        );
        Self {
            pool,
            table,
            insert_sql: Arc::from(insert_sql),
        }
    }

    /// The inbox table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The pool transactions are opened from.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The SQL that creates the inbox table; idempotent.
    pub fn migration_sql(&self) -> String {
        crate::outbox::schema::inbox_sql(&self.table)
    }

    /// Creates the inbox table if needed (idempotent).
    pub async fn migrate(&self) -> Result<(), OutboxError> {
        run_migration(&self.pool, &self.table, &self.migration_sql()).await
    }

    /// Opens a transaction that records the event as processed by `group`.
    ///
    /// `Ok(None)`: the group already processed this event (committed); do
    /// nothing and ack. `Ok(Some(tx))`: write the effects in `tx`, then
    /// commit; rolling back forgets the record too. If another transaction
    /// is processing the same event right now, this waits for it to finish.
    pub async fn begin(
        &self,
        group: &str,
        event: &Attributes,
    ) -> Result<Option<InboxTransaction>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(&self.insert_sql)
            .bind(group)
            .bind(&event.source)
            .bind(&event.id)
            .bind(&event.ty)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            metrics::counter!(
                METRIC_DUPLICATES,
                "group" => group.to_owned(),
                "type" => event.ty.clone()
            )
            .increment(1);
            tracing::debug!(group, event_id = %event.id, "event already processed; skipping");
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Whether `group` has processed the event (committed).
    pub async fn contains(&self, group: &str, event: &Attributes) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE consumer_group = $1 AND source = $2 AND event_id = $3)",
            self.table.qualified()
        );
        sqlx::query_scalar(&sql)
            .bind(group)
            .bind(&event.source)
            .bind(&event.id)
            .fetch_one(&self.pool)
            .await
    }

    /// Deletes records older than `older_than`; returns how many.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} \
             WHERE processed_at < clock_timestamp() - make_interval(secs => $1) LIMIT 10000)",
            t = self.table.qualified()
        );
        let mut total = 0;
        loop {
            let done = sqlx::query(&sql)
                .bind(older_than.as_secs_f64())
                .execute(&self.pool)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < 10_000 {
                break;
            }
        }
        metrics::counter!(METRIC_PRUNED, "table" => self.table.label()).increment(total);
        Ok(total)
    }
}
