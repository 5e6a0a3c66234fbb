-- Generated from the crate's DDL for the default names; `TESSERA_BLESS=1 cargo test -p tessera-event-bus --features postgres shipped_migrations` rewrites it.

CREATE SCHEMA IF NOT EXISTS "tessera";

CREATE TABLE IF NOT EXISTS "tessera"."inbox" (
    consumer_group text        NOT NULL,
    source         text        NOT NULL,
    event_id       text        NOT NULL,
    event_type     text        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer_group, source, event_id)
);

CREATE INDEX IF NOT EXISTS "inbox_processed_idx" ON "tessera"."inbox" (processed_at);
