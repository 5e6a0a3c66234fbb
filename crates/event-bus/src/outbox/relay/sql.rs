//! The relay's SQL text, built once per relay from the table name.
//!
//! Every statement a round runs is here, next to the parameters it takes, so
//! that a change to how rows are claimed or marked is a change to this file
//! and to the code in `round.rs` that binds them.

/// Keeps the claim lock apart from [`run_migration`](crate::outbox::migrate::run_migration)'s.
pub(super) const CLAIM_LOCK_SALT: i64 = 0x0c1a_1e00_0000_0001;

/// Takes the table's claim lock for the transaction. `$1` the lock key.
pub(super) const CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

/// The statements of one relay, for one table.
#[derive(Debug, Clone)]
pub(super) struct RelaySql {
    /// Claims the oldest ready rows whose subject has no earlier row leased
    /// by another relay or backing off. `$1` batch size, `$2` lease seconds,
    /// `$3` owner.
    pub(super) claim: String,
    /// Marks rows sent. `$1` the seqs.
    pub(super) mark_sent: String,
    /// Hands failed rows back with their next attempt time. `$1` seqs, `$2`
    /// delays in seconds, `$3` errors, `$4` owner.
    pub(super) mark_failed: String,
    /// Parks rows with their reasons. `$1` seqs, `$2` reasons.
    pub(super) park: String,
    /// Hands rows back untried. `$1` seqs, `$2` owner.
    pub(super) release: String,
}

impl RelaySql {
    /// The statements for the table `table` (already qualified and quoted).
    pub(super) fn new(table: &str) -> Self {
        Self {
            claim: claim_sql(table),
            mark_sent: format!(
                "UPDATE {table} SET sent_at = clock_timestamp(), lease_until = NULL, \
                 lease_owner = NULL, next_attempt_at = NULL, last_error = NULL \
                 WHERE seq = ANY($1)"
            ),
            mark_failed: format!(
                "UPDATE {table} AS t SET lease_until = NULL, lease_owner = NULL, \
                 attempts = t.attempts + 1, last_error = f.error, \
                 next_attempt_at = clock_timestamp() + make_interval(secs => f.delay) \
                 FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS f(seq, delay, error) \
                 WHERE t.seq = f.seq AND t.lease_owner = $4"
            ),
            park: format!(
                "UPDATE {table} AS t SET lease_until = NULL, lease_owner = NULL, \
                 parked_at = clock_timestamp(), park_reason = p.reason \
                 FROM unnest($1::bigint[], $2::text[]) AS p(seq, reason) \
                 WHERE t.seq = p.seq AND t.sent_at IS NULL"
            ),
            release: format!(
                "UPDATE {table} SET lease_until = NULL, lease_owner = NULL \
                 WHERE seq = ANY($1) AND lease_owner = $2"
            ),
        }
    }
}

/// Claims the oldest ready rows whose subject has no earlier row leased by
/// another relay or backing off. `$1` batch size, `$2` lease seconds, `$3`
/// owner.
///
/// The relay's own leases do not hold a subject back: its pipeline publishes
/// a subject's later rows after the earlier ones it holds, in row order, and
/// keeps later rows back itself once an earlier one fails (`pipeline.rs`).
fn claim_sql(table: &str) -> String {
    format!(
        "WITH busy AS ( \
           SELECT subject, min(seq) AS first_seq FROM {table} \
           WHERE sent_at IS NULL AND parked_at IS NULL AND subject IS NOT NULL \
             AND (lease_until IS NOT NULL OR next_attempt_at IS NOT NULL) \
             AND ((lease_until > clock_timestamp() AND lease_owner <> $3) \
                  OR next_attempt_at > clock_timestamp()) \
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
