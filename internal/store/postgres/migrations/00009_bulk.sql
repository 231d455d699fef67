-- +goose Up
-- Bulk forced resets: one row per bulk, one member row per user it names
-- (the primary key makes "one link per user per bulk" a fact of the
-- schema), and the bulk's deliveries marked so its progress is counted
-- from the delivery rows themselves.
CREATE TABLE bulk_resets (
    id              text PRIMARY KEY,
    institution_id  text NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    method          text NOT NULL,
    all_users       boolean NOT NULL DEFAULT false,
    state           text NOT NULL,
    rate            integer NOT NULL DEFAULT 0,
    client_id       text NOT NULL DEFAULT '',
    idempotency_key text NOT NULL DEFAULT '',
    request_hash    bytea NOT NULL DEFAULT '',
    walked          boolean NOT NULL DEFAULT false,
    walk_cursor     text NOT NULL DEFAULT '',
    send_cursor     text NOT NULL DEFAULT '',
    total           bigint NOT NULL DEFAULT 0,
    issued          bigint NOT NULL DEFAULT 0,
    skipped         jsonb NOT NULL DEFAULT '{}',
    next_at         timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX bulk_resets_institution ON bulk_resets (institution_id, created_at);
-- At most one running bulk per institution: its rate is the institution's.
CREATE UNIQUE INDEX bulk_resets_running ON bulk_resets (institution_id) WHERE state = 'running';
CREATE UNIQUE INDEX bulk_resets_key ON bulk_resets (institution_id, client_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE bulk_members (
    bulk_id     text NOT NULL REFERENCES bulk_resets(id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    outcome     text NOT NULL DEFAULT '',
    delivery_id bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bulk_id, user_id)
);

ALTER TABLE deliveries ADD COLUMN bulk_id text;
CREATE INDEX deliveries_bulk ON deliveries (bulk_id, state, last_error) WHERE bulk_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_bulk;
ALTER TABLE deliveries DROP COLUMN bulk_id;
DROP TABLE bulk_members;
DROP TABLE bulk_resets;
