-- The user service's users table for tessera-user-sync's PgUserDirectory, default names (tessera.users).
-- PgUserDirectory::migrate() runs this with your schema and table names.
CREATE SCHEMA IF NOT EXISTS "tessera";

CREATE TABLE IF NOT EXISTS "tessera"."users" (
    user_id      TEXT PRIMARY KEY,
    -- Bumped by every change, deletion included; the version of the last event emitted.
    version      BIGINT NOT NULL CHECK (version > 0),
    display_name TEXT NOT NULL,
    username     TEXT,
    email        TEXT,
    avatar_url   TEXT,
    -- Set on deletion: the profile is cleared and the row stays as a tombstone (ids are never reused).
    deleted_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);
