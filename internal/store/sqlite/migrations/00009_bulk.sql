-- +goose Up
-- Bulk forced resets: one row per bulk, one member row per user it names
-- (the primary key makes "one link per user per bulk" a fact of the
-- schema), and the bulk's deliveries marked so its progress is counted
-- from the delivery rows themselves.
CREATE TABLE bulk_resets (
    id              TEXT PRIMARY KEY,
    institution_id  TEXT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    method          TEXT NOT NULL,
    all_users       INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL,
    rate            INTEGER NOT NULL DEFAULT 0,
    client_id       TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL DEFAULT '',
    request_hash    BLOB NOT NULL DEFAULT x'',
    walked          INTEGER NOT NULL DEFAULT 0,
    walk_cursor     TEXT NOT NULL DEFAULT '',
    send_cursor     TEXT NOT NULL DEFAULT '',
    total           INTEGER NOT NULL DEFAULT 0,
    issued          INTEGER NOT NULL DEFAULT 0,
    skipped         TEXT NOT NULL DEFAULT '{}',
    next_at         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX bulk_resets_institution ON bulk_resets (institution_id, created_at);
-- At most one running bulk per institution: its rate is the institution's.
CREATE UNIQUE INDEX bulk_resets_running ON bulk_resets (institution_id) WHERE state = 'running';
CREATE UNIQUE INDEX bulk_resets_key ON bulk_resets (institution_id, client_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE bulk_members (
    bulk_id     TEXT NOT NULL REFERENCES bulk_resets(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    outcome     TEXT NOT NULL DEFAULT '',
    delivery_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bulk_id, user_id)
) STRICT, WITHOUT ROWID;

ALTER TABLE deliveries ADD COLUMN bulk_id TEXT;
CREATE INDEX deliveries_bulk ON deliveries (bulk_id, state, last_error) WHERE bulk_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_bulk;
ALTER TABLE deliveries DROP COLUMN bulk_id;
DROP TABLE bulk_members;
DROP TABLE bulk_resets;
