//! The run's own PostgreSQL schema: the outbox and inbox tables, the
//! `committed` table the publishers write in their transactions, the
//! `handled` table the consumers write in the inbox's transaction, and the
//! SQL that compares the two.

use std::{str::FromStr as _, time::Duration};

use sqlx::{
    Connection as _, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tessera_event_bus::{
    inbox::Inbox,
    outbox::{Outbox, TableName},
};

use crate::error::SoakError;

/// How long connecting to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The run's schema and the pool it is reached with; dropped by [`RunDb::drop_schema`].
#[derive(Debug, Clone)]
pub(crate) struct RunDb {
    pub(crate) pool: PgPool,
    pub(crate) schema: String,
}

/// Commit→handled latencies, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Latencies {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// How the events committed around a node kill fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) events: i64,
    pub(crate) handled: i64,
    /// The longest wait of one of them, in µs: from the kill (or from its
    /// commit, if later) until it was first handled.
    pub(crate) longest_wait_us: Option<i64>,
}

/// The committed and handled counts the progress lines and the summary show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Rows in `committed`: events whose transaction committed.
    pub(crate) committed: i64,
    /// Distinct event ids in `handled`.
    pub(crate) handled: i64,
}

/// A URL (or a comma-separated list of them) with passwords masked, for messages.
pub(crate) fn redact(urls: &str) -> String {
    let one = |part: &str| match url::Url::parse(part.trim()) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => format!(
            "(unparsable url: {})",
            part.split('@').next_back().unwrap_or_default()
        ),
    };
    urls.split(',').map(one).collect::<Vec<_>>().join(",")
}

impl RunDb {
    /// Connects and creates the schema `name` with every table in it.
    pub(crate) async fn create(
        database: &str,
        name: &str,
        connections: u32,
    ) -> Result<Self, SoakError> {
        let unreachable = || format!("cannot connect to PostgreSQL at {}", redact(database));
        let options = PgConnectOptions::from_str(database).map_err(SoakError::db(format!(
            "the database url {} is not a PostgreSQL url",
            redact(database)
        )))?;
        // One connection first: a pool would retry until its timeout and
        // then report only that it timed out, not why.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .unwrap_or_else(|_| {
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {CONNECT_TIMEOUT:?}"),
                )))
            })
            .map_err(SoakError::db(unreachable()))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(SoakError::db(unreachable()))?;
        let db = Self {
            pool,
            schema: name.to_owned(),
        };
        let s = &db.schema;
        // No arguments: the simple protocol runs every statement.
        let ddl = format!(
            r#"CREATE SCHEMA "{s}";
               CREATE TABLE "{s}".committed (
                 event_id text PRIMARY KEY, subject text NOT NULL, seq bigint NOT NULL,
                 committed_us bigint NOT NULL);
               CREATE INDEX ON "{s}".committed (committed_us);
               CREATE TABLE "{s}".handled (
                 event_id text NOT NULL, subject text NOT NULL, seq bigint NOT NULL,
                 handled_us bigint NOT NULL);
               CREATE INDEX ON "{s}".handled (event_id);"#
        );
        sqlx::Executor::execute(&db.pool, ddl.as_str())
            .await
            .map_err(SoakError::db(format!("cannot create the schema {s}")))?;
        Ok(db)
    }

    pub(crate) fn outbox(&self) -> Outbox {
        Outbox::new(TableName::new(&self.schema, "outbox").expect("a valid schema name"))
    }

    pub(crate) fn inbox(&self) -> Inbox {
        Inbox::with_table(
            self.pool.clone(),
            TableName::new(&self.schema, "inbox").expect("a valid schema name"),
        )
    }

    pub(crate) fn committed_table(&self) -> String {
        format!(r#""{}".committed"#, self.schema)
    }

    pub(crate) fn handled_table(&self) -> String {
        format!(r#""{}".handled"#, self.schema)
    }

    /// Drops the schema and everything in it, and closes the pool.
    pub(crate) async fn drop_schema(self) -> Result<(), SoakError> {
        let result = sqlx::query(&format!(
            r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#,
            self.schema
        ))
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(SoakError::db(format!(
            "cannot drop the schema {}",
            self.schema
        )));
        self.pool.close().await;
        result
    }

    pub(crate) async fn counts(&self) -> Result<Counts, SoakError> {
        let (committed, handled): (i64, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM {}), (SELECT count(DISTINCT event_id) FROM {})",
            self.committed_table(),
            self.handled_table()
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(SoakError::db("cannot count events"))?;
        Ok(Counts { committed, handled })
    }

    /// One count; `what` names it in the error.
    async fn count(&self, sql: &str, what: &str) -> Result<i64, SoakError> {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(SoakError::db(format!("cannot count {what}")))
    }

    /// Committed events whose id is not in `handled`.
    pub(crate) async fn lost(&self) -> Result<i64, SoakError> {
        let (c, h) = (self.committed_table(), self.handled_table());
        let sql = format!(
            "SELECT count(*) FROM {c} c WHERE NOT EXISTS (SELECT 1 FROM {h} h WHERE h.event_id = c.event_id)"
        );
        self.count(&sql, "lost events").await
    }

    /// Handled rows beyond the first of their event: effects the inbox let through twice.
    pub(crate) async fn double_effects(&self) -> Result<i64, SoakError> {
        let sql = format!(
            "SELECT count(*) - count(DISTINCT event_id) FROM {}",
            self.handled_table()
        );
        self.count(&sql, "double effects").await
    }

    /// Handled events that are not committed ones (must be none).
    pub(crate) async fn strangers(&self) -> Result<i64, SoakError> {
        let (c, h) = (self.committed_table(), self.handled_table());
        let sql = format!(
            "SELECT count(DISTINCT event_id) FROM {h} h WHERE NOT EXISTS (SELECT 1 FROM {c} c WHERE c.event_id = h.event_id)"
        );
        self.count(&sql, "handled events never committed").await
    }

    /// Latency of each handled event: its first handling minus its commit.
    pub(crate) async fn latencies(&self) -> Result<Option<Latencies>, SoakError> {
        let row: (Option<Vec<f64>>, Option<i64>) = sqlx::query_as(&format!(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY h.first - c.committed_us), \
                    max(h.first - c.committed_us) \
             FROM {} c JOIN (SELECT event_id, min(handled_us) AS first FROM {} GROUP BY event_id) h \
             USING (event_id)",
            self.committed_table(),
            self.handled_table()
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(SoakError::db("cannot compute latencies"))?;
        Ok(match row {
            (Some(p), Some(max)) if p.len() == 2 => Some(Latencies {
                p50: p[0],
                p99: p[1],
                max: max as f64,
            }),
            _ => None,
        })
    }

    /// The events committed in `[from_us, to_us)`, and how long the
    /// longest of them waited after `kill_us` (or after its commit, if later)
    /// to be handled.
    pub(crate) async fn window(
        &self,
        from_us: i64,
        to_us: i64,
        kill_us: i64,
    ) -> Result<Window, SoakError> {
        let (events, handled, longest_wait_us): (i64, i64, Option<i64>) = sqlx::query_as(&format!(
            "SELECT count(*), count(h.first), max(h.first - greatest(c.committed_us, $3)) FROM {} c \
             LEFT JOIN LATERAL (SELECT min(handled_us) AS first FROM {} x WHERE x.event_id = c.event_id) h \
             ON true WHERE c.committed_us >= $1 AND c.committed_us < $2",
            self.committed_table(),
            self.handled_table()
        ))
        .bind(from_us)
        .bind(to_us)
        .bind(kill_us)
        .fetch_one(&self.pool)
        .await
        .map_err(SoakError::db("cannot measure a recovery"))?;
        Ok(Window {
            events,
            handled,
            longest_wait_us,
        })
    }
}
