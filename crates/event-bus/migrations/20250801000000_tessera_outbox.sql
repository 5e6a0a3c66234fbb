-- Generated from the crate's DDL for the default names; `TESSERA_BLESS=1 cargo test -p tessera-event-bus --features postgres shipped_migrations` rewrites it.

CREATE SCHEMA IF NOT EXISTS "tessera";

CREATE TABLE IF NOT EXISTS "tessera"."outbox" (
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

CREATE INDEX IF NOT EXISTS "outbox_pending_idx" ON "tessera"."outbox" (seq)
    WHERE sent_at IS NULL AND parked_at IS NULL;
CREATE INDEX IF NOT EXISTS "outbox_busy_idx" ON "tessera"."outbox" (subject, seq)
    WHERE sent_at IS NULL AND parked_at IS NULL
      AND (lease_until IS NOT NULL OR next_attempt_at IS NOT NULL);
CREATE INDEX IF NOT EXISTS "outbox_sent_idx" ON "tessera"."outbox" (sent_at)
    WHERE sent_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS "outbox_parked_idx" ON "tessera"."outbox" (seq)
    WHERE parked_at IS NOT NULL;

CREATE OR REPLACE FUNCTION "tessera"."outbox_notify"() RETURNS trigger
LANGUAGE plpgsql AS $tessera$
BEGIN
    PERFORM pg_notify('tessera.outbox', '');
    RETURN NULL;
END
$tessera$;

DROP TRIGGER IF EXISTS "outbox_notify" ON "tessera"."outbox";
CREATE TRIGGER "outbox_notify" AFTER INSERT ON "tessera"."outbox"
    FOR EACH STATEMENT EXECUTE FUNCTION "tessera"."outbox_notify"();
