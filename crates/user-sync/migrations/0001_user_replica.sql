-- The user replica of tessera-user-sync, default names (tessera.user_replica).
-- PgReplicaStore::migrate() runs this with your schema and table names.
CREATE SCHEMA IF NOT EXISTS "tessera";

CREATE TABLE IF NOT EXISTS "tessera"."user_replica" (
    user_id      TEXT PRIMARY KEY,
    -- The version of the newest applied change; for a tombstone, the highest seen.
    version      BIGINT NOT NULL CHECK (version > 0),
    -- A tombstone: the user was deleted, profile columns are cleared, nothing applies any more.
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    display_name TEXT,
    username     TEXT,
    email        TEXT,
    avatar_url   TEXT,
    -- When the newest applied change happened at the producer (deletion time for tombstones).
    updated_at   TIMESTAMPTZ NOT NULL,
    -- When this row last changed locally; reconciliation spares rows changed during its run.
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS "user_replica_live_applied_at"
    ON "tessera"."user_replica" (applied_at) WHERE NOT deleted;
