//! Creating the tables: the migration SQL and running it once across
//! processes.

use sqlx::PgPool;

use super::{enqueue::Outbox, error::OutboxError, schema, table::TableName};
use crate::Codec;

impl<C: Codec> Outbox<C> {
    /// The SQL that creates the outbox table, its indexes and its notify
    /// trigger; idempotent. Run it in one transaction.
    pub fn migration_sql(&self) -> String {
        schema::outbox_sql(&self.inner.table)
    }

    /// Creates the outbox table if needed (idempotent, safe to run from
    /// several processes at once).
    pub async fn migrate(&self, pool: &PgPool) -> Result<(), OutboxError> {
        run_migration(pool, &self.inner.table, &self.migration_sql()).await
    }
}

/// Runs idempotent DDL in one transaction, serialised across processes.
pub(crate) async fn run_migration(
    pool: &PgPool,
    table: &TableName,
    sql: &str,
) -> Result<(), OutboxError> {
    let mut tx = pool.begin().await?;
    // Concurrent CREATE ... IF NOT EXISTS can still collide; take turns.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(table.lock_key())
        .execute(&mut *tx)
        .await?;
    // No arguments: the simple query protocol runs all statements at once.
    sqlx::Executor::execute(&mut *tx, sql).await?;
    tx.commit().await?;
    Ok(())
}
