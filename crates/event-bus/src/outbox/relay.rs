//! [`OutboxRelay`]: publishes committed outbox rows and marks them sent.

use std::{
    collections::HashSet,
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::{PgPool, Row as _, postgres::PgListener};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::{
    Inner, METRIC_BATCH_DURATION, METRIC_OLDEST_PENDING_AGE, METRIC_PARKED, METRIC_PARKED_TOTAL,
    METRIC_PENDING, METRIC_PRUNED, METRIC_PUBLISH_FAILURES, METRIC_PUBLISHED, Outbox, OutboxError,
};
use crate::{BusError, Codec, Publisher, RawEvent, codec::is_json_media_type, wire};

/// Publishes committed outbox rows through a [`Publisher`].
///
/// Each round claims up to [`batch_size`](OutboxRelay::batch_size) rows
/// (oldest first, skipping subjects whose earlier rows are still in flight or
/// waiting for a retry), publishes them with one
/// [`Publisher::publish_all`], and marks them sent. When the batch publish
/// fails, the rows are published one by one, so that one bad row parks or
/// backs off alone and other subjects go on. Between rounds the relay waits
/// for a `NOTIFY` from the outbox trigger or the poll interval, whichever
/// comes first.
///
/// Run one relay per process; any number of processes may relay from the
/// same table. See the [module docs](super) for the guarantees.
#[must_use]
pub struct OutboxRelay {
    outbox: Arc<Inner>,
    pool: PgPool,
    publisher: Arc<dyn Publisher>,
    owner: String,
    batch_size: u32,
    poll_interval: Duration,
    lease: Duration,
    publish_timeout: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    park_after: Option<u32>,
    retention: Duration,
    prune_interval: Duration,
    metrics_interval: Duration,
    listen: bool,
    claim_sql: String,
}

impl fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("table", &self.outbox.table)
            .field("owner", &self.owner)
            .field("publisher", &self.publisher)
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("lease", &self.lease)
            .field("publish_timeout", &self.publish_timeout)
            .field("park_after", &self.park_after)
            .field("retention", &self.retention)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// What one relay round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows published and marked sent.
    pub published: usize,
    /// Rows whose publish failed; they back off and are retried.
    pub failed: usize,
    /// Rows parked.
    pub parked: usize,
    /// Rows handed back untried (behind a failed row of the same subject).
    pub released: usize,
}

/// One claimed row.
struct Claimed {
    seq: i64,
    event_id: String,
    event_type: String,
    subject: Option<String>,
    attributes: String,
    data: Vec<u8>,
    attempts: i32,
}

/// What happened to one row in a round.
enum Outcome {
    Sent,
    Failed(String),
    Parked(String),
    Released,
}

impl OutboxRelay {
    /// A relay for `outbox`, reading with `pool`, publishing with `publisher`.
    ///
    /// Defaults: batches of 100, poll every second, leases of 60 s, publish
    /// timeout 20 s, backoff from 100 ms doubling to 30 s with jitter, sent
    /// rows kept 7 days and pruned hourly, backlog metrics every 10 s,
    /// `LISTEN` on.
    pub fn new<C: Codec>(outbox: &Outbox<C>, pool: PgPool, publisher: Arc<dyn Publisher>) -> Self {
        let inner = Arc::clone(outbox.inner());
        let claim_sql = claim_sql(&inner.table.qualified());
        Self {
            outbox: inner,
            pool,
            publisher,
            owner: format!("relay-{}", uuid::Uuid::new_v4()),
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            publish_timeout: Duration::from_secs(20),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            park_after: None,
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(3600),
            metrics_interval: Duration::from_secs(10),
            listen: true,
            claim_sql,
        }
    }

    /// The name this relay writes into the rows it claims (default `relay-<uuid>`).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Rows per round (default 100, at least 1).
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// How long an idle relay waits before looking again without a `NOTIFY` (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a claim lasts (default 60 s). A relay that dies holding a
    /// claim delays its rows by at most this long; then another relay
    /// publishes them again. Must exceed the publish timeout.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long one publish (or batch publish) may take before it counts as
    /// failed (default 20 s).
    pub fn publish_timeout(mut self, limit: Duration) -> Self {
        self.publish_timeout = limit;
        self
    }

    /// The delay before the first retry of a failed row and the longest delay
    /// (defaults 100 ms and 30 s; doubling, with jitter).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Parks a row instead of retrying it once its publish has failed
    /// `attempts` times and the broker refused the last one (a `basic.nack`,
    /// say a queue over its length limit that rejects publishes), with the
    /// reason. Default: refused rows are retried, with backoff, without
    /// limit. A broker that is out of reach never parks a row, whatever the
    /// setting: the relay waits for it.
    pub fn park_after(mut self, attempts: u32) -> Self {
        self.park_after = Some(attempts.max(1));
        self
    }

    /// How long sent rows are kept before pruning (default 7 days).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How often sent rows are pruned (default hourly).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// How often the backlog gauges are refreshed (default 10 s).
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Whether to `LISTEN` for the outbox trigger's notifications (default
    /// `true`); without it the relay only polls.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    fn validate(&self) -> Result<(), OutboxError> {
        if self.lease <= self.publish_timeout {
            return Err(OutboxError::InvalidConfig(format!(
                "the lease ({:?}) must be longer than the publish timeout ({:?})",
                self.lease, self.publish_timeout
            )));
        }
        if self.poll_interval.is_zero() {
            return Err(OutboxError::InvalidConfig(
                "the poll interval is zero".to_owned(),
            ));
        }
        if self.owner.is_empty() {
            return Err(OutboxError::InvalidConfig(
                "the owner name is empty".to_owned(),
            ));
        }
        Ok(())
    }

    /// Starts the relay in a background task; stop it with
    /// [`OutboxRelayHandle::shutdown`].
    ///
    /// Fails at once on an invalid configuration or when the database cannot
    /// be reached to start listening.
    pub async fn start(self) -> Result<OutboxRelayHandle, OutboxError> {
        self.validate()?;
        let listener = self.connect_listener().await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            self.run_with(listener, async {
                // A dropped handle also stops the relay.
                let _ = stopped.await;
            })
            .await;
        });
        Ok(OutboxRelayHandle {
            stop: Some(stop),
            task,
        })
    }

    /// Runs until `shutdown` completes, then finishes the round in flight and
    /// returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), OutboxError> {
        self.validate()?;
        let listener = self.connect_listener().await?;
        self.run_with(listener, shutdown).await;
        Ok(())
    }

    async fn connect_listener(&self) -> Result<Option<PgListener>, OutboxError> {
        if !self.listen {
            return Ok(None);
        }
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.outbox.table.label()).await?;
        Ok(Some(listener))
    }

    async fn run_with(self, mut listener: Option<PgListener>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let label = self.outbox.table.label();
        let mut stopping = false;
        let mut next_prune = Instant::now() + self.prune_interval;
        let mut next_metrics = Instant::now();
        let mut db_failures: usize = 0;
        tracing::info!(table = %label, owner = %self.owner, "outbox relay started");
        while !stopping {
            if Instant::now() >= next_metrics {
                next_metrics = Instant::now() + self.metrics_interval;
                self.report_backlog(&label).await;
            }
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + self.prune_interval;
                self.prune(&label).await;
            }
            // The round in flight always completes: shutdown only stops the next one.
            let round = self.publish_pending();
            tokio::pin!(round);
            let result = loop {
                tokio::select! {
                    biased;
                    result = &mut round => break result,
                    () = &mut shutdown, if !stopping => stopping = true,
                }
            };
            let idle = match result {
                Ok(report) if report.claimed > 0 => {
                    db_failures = 0;
                    continue;
                }
                Ok(_) => {
                    db_failures = 0;
                    self.poll_interval
                }
                Err(error) => {
                    let delay = self.backoff_delay(db_failures);
                    db_failures += 1;
                    tracing::warn!(%error, table = %label, ?delay, "outbox relay round failed");
                    delay
                }
            };
            if stopping {
                break;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => stopping = true,
                () = wait_for_notification(&mut listener), if listener.is_some() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
        if let Some(mut listener) = listener {
            let _ = listener.unlisten_all().await;
        }
        tracing::info!(table = %label, owner = %self.owner, "outbox relay stopped");
    }

    /// One round: claims a batch, publishes it, marks the outcome. Returns
    /// what happened; an empty report means nothing was ready.
    ///
    /// [`start`](OutboxRelay::start) calls this in a loop; call it directly
    /// to drive the relay by hand (in tests or a job runner).
    pub async fn publish_pending(&self) -> Result<BatchReport, OutboxError> {
        let label = self.outbox.table.label();
        let span = tracing::info_span!(
            "tessera.outbox.batch",
            table = %label,
            owner = %self.owner,
            claimed = tracing::field::Empty,
            published = tracing::field::Empty,
            failed = tracing::field::Empty,
            parked = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.round().instrument(span.clone()).await;
        if let Ok(report) = &result
            && report.claimed > 0
        {
            span.record("claimed", report.claimed);
            span.record("published", report.published);
            span.record("failed", report.failed);
            span.record("parked", report.parked);
            metrics::histogram!(METRIC_BATCH_DURATION, "table" => label.clone())
                .record(started.elapsed().as_secs_f64());
            counter(METRIC_PUBLISHED, &label, report.published);
            counter(METRIC_PUBLISH_FAILURES, &label, report.failed);
            counter(METRIC_PARKED_TOTAL, &label, report.parked);
        }
        result
    }

    async fn round(&self) -> Result<BatchReport, OutboxError> {
        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(BatchReport::default());
        }
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(rows.len());
        let mut decoded = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            match decode(row) {
                Ok(event) => {
                    outcomes.push(None);
                    decoded.push((index, event));
                }
                Err(reason) => {
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "parking an outbox row");
                    outcomes.push(Some(Outcome::Parked(reason)));
                }
            }
        }
        // Rows that failed before are the heads of their subjects: they go
        // one by one first, so that one of them failing again cannot break a
        // batch whose earlier rows were already accepted.
        let mut blocked = HashSet::new();
        let (retried, fresh): (Vec<_>, Vec<_>) = decoded
            .into_iter()
            .partition(|(index, _)| rows[*index].attempts > 0);
        self.publish_one_by_one(&rows, retried, &mut blocked, &mut outcomes)
            .await;
        let fresh: Vec<_> = fresh
            .into_iter()
            .filter(|(index, _)| {
                let held = rows[*index]
                    .subject
                    .as_ref()
                    .is_some_and(|s| blocked.contains(s));
                if held {
                    outcomes[*index] = Some(Outcome::Released);
                }
                !held
            })
            .collect();
        if !fresh.is_empty() {
            let events = fresh.iter().map(|(_, event)| event.clone()).collect();
            match self.with_timeout(self.publisher.publish_all(events)).await {
                Ok(()) => {
                    for (index, _) in &fresh {
                        outcomes[*index] = Some(Outcome::Sent);
                    }
                }
                Err(error) if is_connection_error(&error) => {
                    // Nothing gets through; retrying row by row would only wait longer.
                    tracing::warn!(%error, rows = fresh.len(), "batch publish failed; backing off");
                    for (index, _) in &fresh {
                        outcomes[*index] = Some(Outcome::Failed(error.to_string()));
                    }
                }
                Err(error) => {
                    // The batch may have been accepted in part: rows before
                    // the bad one are published again (at least once).
                    tracing::debug!(%error, "batch publish failed; publishing one by one");
                    self.publish_one_by_one(&rows, fresh, &mut blocked, &mut outcomes)
                        .await;
                }
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Released))
            .collect();
        self.settle(&rows, &outcomes).await
    }

    /// Publishes in row order; after a failure, later rows of the same
    /// subject are released untried so the subject keeps its order. Once
    /// the broker is out of reach, the remaining rows fail without trying.
    async fn publish_one_by_one(
        &self,
        rows: &[Claimed],
        events: Vec<(usize, RawEvent)>,
        blocked: &mut HashSet<String>,
        outcomes: &mut [Option<Outcome>],
    ) {
        let mut unreachable: Option<String> = None;
        for (index, event) in events {
            let row = &rows[index];
            if let Some(subject) = &row.subject
                && blocked.contains(subject)
            {
                outcomes[index] = Some(Outcome::Released);
                continue;
            }
            let outcome = if let Some(error) = &unreachable {
                Outcome::Failed(error.clone())
            } else {
                match self.with_timeout(self.publisher.publish(event)).await {
                    Ok(()) => Outcome::Sent,
                    Err(error) if is_permanent(&error) => Outcome::Parked(error.to_string()),
                    Err(error) if self.gives_up(row, &error) => Outcome::Parked(format!(
                        "gave up after {} attempts: {error}",
                        row.attempts.saturating_add(1)
                    )),
                    Err(error) => {
                        if is_connection_error(&error) {
                            unreachable = Some(error.to_string());
                        }
                        Outcome::Failed(error.to_string())
                    }
                }
            };
            match &outcome {
                Outcome::Failed(reason) => {
                    if let Some(subject) = &row.subject {
                        blocked.insert(subject.clone());
                    }
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "outbox publish failed; retrying later");
                }
                Outcome::Parked(reason) => {
                    tracing::warn!(seq = row.seq, event_id = %row.event_id, %reason, "outbox publish refused; parking the row");
                }
                Outcome::Sent | Outcome::Released => {}
            }
            outcomes[index] = Some(outcome);
        }
    }

    /// Whether a refused publish was the row's last allowed attempt.
    fn gives_up(&self, row: &Claimed, error: &BusError) -> bool {
        !is_connection_error(error)
            && self
                .park_after
                .is_some_and(|limit| i64::from(row.attempts) + 1 >= i64::from(limit))
    }

    async fn with_timeout(
        &self,
        publish: impl Future<Output = Result<(), BusError>>,
    ) -> Result<(), BusError> {
        match tokio::time::timeout(self.publish_timeout, publish).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Connection(
                format!("publish timed out after {:?}", self.publish_timeout).into(),
            )),
        }
    }

    /// Claims a batch under the table's claim lock, so that concurrent
    /// relays see each other's leases and never split a subject.
    async fn claim(&self) -> Result<Vec<Claimed>, OutboxError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.outbox.table.lock_key() ^ CLAIM_LOCK_SALT)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&self.claim_sql)
            .bind(i64::from(self.batch_size))
            .bind(self.lease.as_secs_f64())
            .bind(&self.owner)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    seq: row.try_get("seq")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    subject: row.try_get("subject")?,
                    attributes: row.try_get("attributes")?,
                    data: row.try_get("data")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|row| row.seq);
        Ok(claimed)
    }

    /// Writes the round's outcomes. Marking sent is retried a few times: a
    /// row left claimed is published again once its lease expires.
    async fn settle(
        &self,
        rows: &[Claimed],
        outcomes: &[Outcome],
    ) -> Result<BatchReport, OutboxError> {
        let table = self.outbox.table.qualified();
        let mut report = BatchReport {
            claimed: rows.len(),
            ..BatchReport::default()
        };
        let mut sent = Vec::new();
        let mut released = Vec::new();
        let (mut failed, mut delays, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let (mut parked, mut reasons) = (Vec::new(), Vec::new());
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Outcome::Sent => sent.push(row.seq),
                Outcome::Released => released.push(row.seq),
                Outcome::Failed(error) => {
                    failed.push(row.seq);
                    let retry = usize::try_from(row.attempts).unwrap_or_default();
                    delays.push(self.backoff_delay(retry).as_secs_f64());
                    errors.push(truncate(error));
                }
                Outcome::Parked(reason) => {
                    parked.push(row.seq);
                    reasons.push(truncate(reason));
                }
            }
        }
        report.published = sent.len();
        report.failed = failed.len();
        report.parked = parked.len();
        report.released = released.len();
        if !sent.is_empty() {
            let sql = format!(
                "UPDATE {table} SET sent_at = clock_timestamp(), lease_until = NULL, \
                 lease_owner = NULL, next_attempt_at = NULL, last_error = NULL \
                 WHERE seq = ANY($1)"
            );
            let mut attempt = 0;
            loop {
                match sqlx::query(&sql).bind(&sent).execute(&self.pool).await {
                    Ok(_) => break,
                    Err(error) if attempt < 3 => {
                        attempt += 1;
                        tracing::warn!(%error, "could not mark outbox rows sent; retrying");
                        tokio::time::sleep(self.backoff_delay(attempt)).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        if !failed.is_empty() {
            let sql = format!(
                "UPDATE {table} AS t SET lease_until = NULL, lease_owner = NULL, \
                 attempts = t.attempts + 1, last_error = f.error, \
                 next_attempt_at = clock_timestamp() + make_interval(secs => f.delay) \
                 FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS f(seq, delay, error) \
                 WHERE t.seq = f.seq AND t.lease_owner = $4"
            );
            sqlx::query(&sql)
                .bind(&failed)
                .bind(&delays)
                .bind(&errors)
                .bind(&self.owner)
                .execute(&self.pool)
                .await?;
        }
        if !parked.is_empty() {
            let sql = format!(
                "UPDATE {table} AS t SET lease_until = NULL, lease_owner = NULL, \
                 parked_at = clock_timestamp(), park_reason = p.reason \
                 FROM unnest($1::bigint[], $2::text[]) AS p(seq, reason) \
                 WHERE t.seq = p.seq AND t.sent_at IS NULL"
            );
            sqlx::query(&sql)
                .bind(&parked)
                .bind(&reasons)
                .execute(&self.pool)
                .await?;
        }
        if !released.is_empty() {
            let sql = format!(
                "UPDATE {table} SET lease_until = NULL, lease_owner = NULL \
                 WHERE seq = ANY($1) AND lease_owner = $2"
            );
            sqlx::query(&sql)
                .bind(&released)
                .bind(&self.owner)
                .execute(&self.pool)
                .await?;
        }
        Ok(report)
    }

    fn backoff_delay(&self, retry: usize) -> Duration {
        ExponentialBuilder::new()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(retry)
            .unwrap_or(self.max_backoff)
    }

    async fn report_backlog(&self, label: &str) {
        match self.outbox.backlog(&self.pool).await {
            Ok(backlog) => {
                gauge(METRIC_PENDING, label, backlog.pending as f64);
                gauge(METRIC_PARKED, label, backlog.parked as f64);
                let age = backlog.oldest_pending_age.unwrap_or_default();
                gauge(METRIC_OLDEST_PENDING_AGE, label, age.as_secs_f64());
            }
            Err(error) => {
                tracing::warn!(%error, table = %label, "could not read the outbox backlog");
            }
        }
    }

    async fn prune(&self, label: &str) {
        match self.outbox.prune_sent(&self.pool, self.retention).await {
            Ok(pruned) => {
                counter(
                    METRIC_PRUNED,
                    label,
                    usize::try_from(pruned).unwrap_or(usize::MAX),
                );
                tracing::debug!(table = %label, pruned, "pruned sent outbox rows");
            }
            Err(error) => tracing::warn!(%error, table = %label, "could not prune the outbox"),
        }
    }
}

/// Keeps the claim lock apart from [`run_migration`](super::run_migration)'s.
const CLAIM_LOCK_SALT: i64 = 0x0c1a_1e00_0000_0001;

/// Claims the oldest ready rows whose subject has no earlier row in flight
/// or backing off. `$1` batch size, `$2` lease seconds, `$3` owner.
fn claim_sql(table: &str) -> String {
    format!(
        "WITH busy AS ( \
           SELECT subject, min(seq) AS first_seq FROM {table} \
           WHERE sent_at IS NULL AND parked_at IS NULL AND subject IS NOT NULL \
             AND (lease_until IS NOT NULL OR next_attempt_at IS NOT NULL) \
             AND (lease_until > clock_timestamp() OR next_attempt_at > clock_timestamp()) \
           GROUP BY subject \
         ), picked AS ( \
           SELECT p.seq FROM {table} AS p \
           WHERE p.sent_at IS NULL AND p.parked_at IS NULL \
             AND (p.lease_until IS NULL OR p.lease_until <= clock_timestamp()) \
             AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= clock_timestamp()) \
             AND NOT EXISTS (SELECT 1 FROM busy AS b \
                             WHERE b.subject = p.subject AND b.first_seq < p.seq) \
           ORDER BY p.seq LIMIT $1 \
         ) \
         UPDATE {table} AS t \
         SET lease_until = clock_timestamp() + make_interval(secs => $2), lease_owner = $3 \
         FROM picked WHERE t.seq = picked.seq \
         RETURNING t.seq, t.event_id, t.event_type, t.subject, t.attributes::text AS attributes, \
                   t.data, t.attempts"
    )
}

/// Turns a row into the event to publish, or says why it never can be.
fn decode(row: &Claimed) -> Result<RawEvent, String> {
    let header = wire::from_structured(row.attributes.as_bytes())
        .map_err(|e| format!("the attributes are not a valid cloudevent: {e}"))?;
    let attributes = header.attributes;
    if attributes.id != row.event_id
        || attributes.ty != row.event_type
        || attributes.subject != row.subject
    {
        return Err(
            "the event_id, event_type or subject column disagrees with the attributes".to_owned(),
        );
    }
    let json = attributes
        .datacontenttype
        .as_deref()
        .is_none_or(is_json_media_type);
    if json
        && !row.data.is_empty()
        && serde_json::from_slice::<serde::de::IgnoredAny>(&row.data).is_err()
    {
        return Err("the data is not valid json though its content type says json".to_owned());
    }
    Ok(RawEvent::new(attributes, row.data.clone()))
}

/// Errors no retry can fix: the row is parked.
fn is_permanent(error: &BusError) -> bool {
    !matches!(
        error,
        BusError::Closed | BusError::Connection(_) | BusError::Rejected(_)
    )
}

/// Errors that say the broker is out of reach, not that an event is bad.
fn is_connection_error(error: &BusError) -> bool {
    matches!(error, BusError::Closed | BusError::Connection(_))
}

fn truncate(text: &str) -> String {
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn counter(name: &'static str, table: &str, n: usize) {
    if n > 0 {
        metrics::counter!(name, "table" => table.to_owned()).increment(n as u64);
    }
}

fn gauge(name: &'static str, table: &str, value: f64) {
    metrics::gauge!(name, "table" => table.to_owned()).set(value);
}

/// Waits for the next notification; on a lost connection, returns at once
/// (the caller polls, and the listener reconnects on the next call).
async fn wait_for_notification(listener: &mut Option<PgListener>) {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    match listener.try_recv().await {
        Ok(Some(_)) => {}
        Ok(None) => tracing::debug!("outbox listener reconnecting"),
        Err(error) => {
            tracing::warn!(%error, "outbox listener failed; polling");
            // Avoid a hot loop while the database is down.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Controls a relay started with [`OutboxRelay::start`].
///
/// Dropping the handle stops the relay too, without waiting.
#[derive(Debug)]
pub struct OutboxRelayHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl OutboxRelayHandle {
    /// Stops claiming, finishes the round in flight (publish and mark), and
    /// waits for the relay to end.
    pub async fn shutdown(mut self) -> Result<(), OutboxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| OutboxError::Task(e.to_string()))
    }

    /// Kills the relay task at once, wherever it is (a crash, for tests):
    /// rows it claimed are published again after their lease expires.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Whether the relay task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attributes;

    fn claimed(attributes: &str, data: &[u8]) -> Claimed {
        Claimed {
            seq: 1,
            event_id: "1".to_owned(),
            event_type: "t".to_owned(),
            subject: Some("u1".to_owned()),
            attributes: attributes.to_owned(),
            data: data.to_vec(),
            attempts: 0,
        }
    }

    const GOOD: &str = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"u1","datacontenttype":"application/json"}"#;

    #[test]
    fn a_good_row_decodes_into_its_event() {
        let event = decode(&claimed(GOOD, br#"{"a":1}"#)).unwrap();
        let mut attrs = Attributes::new("1", "/s", "t");
        attrs.subject = Some("u1".to_owned());
        attrs.datacontenttype = Some("application/json".to_owned());
        assert_eq!(event, RawEvent::new(attrs, &br#"{"a":1}"#[..]));
    }

    #[test]
    fn bad_rows_give_a_reason_not_a_panic() {
        let cases = [
            (r#"{"id":"1"}"#, &b"{}"[..], "not a valid cloudevent"),
            ("[1,2]", b"{}", "not a valid cloudevent"),
            (
                r#"{"specversion":"0.3","id":"1","source":"/s","type":"t","subject":"u1"}"#,
                b"{}",
                "not a valid cloudevent",
            ),
            (
                r#"{"specversion":"1.0","id":"2","source":"/s","type":"t","subject":"u1"}"#,
                b"{}",
                "disagrees",
            ),
            (GOOD, b"{not json", "not valid json"),
        ];
        for (attributes, data, expected) in cases {
            let reason = decode(&claimed(attributes, data)).unwrap_err();
            assert!(reason.contains(expected), "{attributes}: {reason}");
        }
    }

    #[test]
    fn only_broker_outages_and_rejections_are_retried() {
        assert!(!is_permanent(&BusError::Closed));
        assert!(!is_permanent(&BusError::Rejected("nack".into())));
        assert!(!is_permanent(&BusError::Connection("down".into())));
        assert!(is_permanent(&BusError::Unroutable("t".into())));
        assert!(is_connection_error(&BusError::Closed));
        assert!(!is_connection_error(&BusError::Rejected("nack".into())));
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1500);
        let cut = truncate(&long);
        assert!(cut.len() <= 2000);
        assert!(long.starts_with(&cut));
    }
}
