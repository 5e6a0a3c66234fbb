//! The DDL of the outbox and inbox tables, rendered for validated names.

use super::TableName;

/// The outbox table, its indexes and the trigger that notifies relays on insert.
///
/// Idempotent (`IF NOT EXISTS`, `CREATE OR REPLACE`), so it can run at every
/// start; run it in one transaction (the trigger is dropped and re-created).
pub(crate) fn outbox_sql(name: &TableName) -> String {
    let table = name.qualified();
    let function = name.sibling("_notify");
    let channel = name.label();
    let trigger = name.local("_notify");
    let pending = name.local("_pending_idx");
    let busy = name.local("_busy_idx");
    let sent = name.local("_sent_idx");
    let parked = name.local("_parked_idx");
    let schema = name.schema();
    format!(
        r#"CREATE SCHEMA IF NOT EXISTS "{schema}";

CREATE TABLE IF NOT EXISTS {table} (
    -- Commit order per subject: enqueue serialises the transactions of one subject.
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Copies of attributes fields, for queries; `attributes` is what is published.
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    subject         text,
    -- The CloudEvents attributes in the CloudEvents JSON format, without data.
    attributes      jsonb       NOT NULL,
    data            bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Failed publishes so far, and when the next one may happen.
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    -- A relay claimed the row until then.
    lease_until     timestamptz,
    lease_owner     text,
    sent_at         timestamptz,
    -- Rows that can never be published wait here with the reason.
    parked_at       timestamptz,
    park_reason     text
);

CREATE INDEX IF NOT EXISTS {pending} ON {table} (seq)
    WHERE sent_at IS NULL AND parked_at IS NULL;
CREATE INDEX IF NOT EXISTS {busy} ON {table} (subject, seq)
    WHERE sent_at IS NULL AND parked_at IS NULL
      AND (lease_until IS NOT NULL OR next_attempt_at IS NOT NULL);
CREATE INDEX IF NOT EXISTS {sent} ON {table} (sent_at)
    WHERE sent_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS {parked} ON {table} (seq)
    WHERE parked_at IS NOT NULL;

CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql AS $tessera$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END
$tessera$;

DROP TRIGGER IF EXISTS {trigger} ON {table};
CREATE TRIGGER {trigger} AFTER INSERT ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {function}();
"#
    )
}

/// The inbox table: one row per (consumer group, source, event id) processed.
pub(crate) fn inbox_sql(name: &TableName) -> String {
    let table = name.qualified();
    let processed = name.local("_processed_idx");
    let schema = name.schema();
    format!(
        r#"CREATE SCHEMA IF NOT EXISTS "{schema}";

CREATE TABLE IF NOT EXISTS {table} (
    consumer_group text        NOT NULL,
    source         text        NOT NULL,
    event_id       text        NOT NULL,
    event_type     text        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer_group, source, event_id)
);

CREATE INDEX IF NOT EXISTS {processed} ON {table} (processed_at);
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTBOX_FILE: &str = "migrations/20250801000000_tessera_outbox.sql";
    const INBOX_FILE: &str = "migrations/20250801000001_tessera_inbox.sql";
    const HEADER: &str = "-- Generated from the crate's DDL for the default names; \
        `TESSERA_BLESS=1 cargo test -p tessera-event-bus --features postgres shipped_migrations` rewrites it.\n\n";

    /// The sqlx migration files are the rendered DDL for the default names.
    #[test]
    fn shipped_migrations_match_the_default_names() {
        let outbox = outbox_sql(&TableName::new("tessera", "outbox").unwrap());
        let inbox = inbox_sql(&TableName::new("tessera", "inbox").unwrap());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (file, body) in [(OUTBOX_FILE, outbox), (INBOX_FILE, inbox)] {
            let expected = format!("{HEADER}{body}");
            let path = dir.join(file);
            if std::env::var_os("TESSERA_BLESS").is_some() {
                std::fs::write(&path, &expected).unwrap();
            }
            let shipped = std::fs::read_to_string(&path).unwrap();
            assert!(
                shipped == expected,
                "{file} is out of date; rerun with TESSERA_BLESS=1"
            );
        }
    }
}
