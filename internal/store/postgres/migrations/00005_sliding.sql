-- +goose Up
-- SPEC §10: every cap and window slides (a true hour, a true 24 h). A
-- counter is the events counted against its key, each with its time;
-- events older than the key's window are dropped as the key is hit.
DROP TABLE rate_counters;
CREATE TABLE rate_events (
    key bytea NOT NULL,
    at  timestamptz NOT NULL
);
CREATE INDEX rate_events_key_at ON rate_events (key, at);

-- A deleted user's contacts, sealed, for contactChangeCooldown after the
-- deletion: re-creating the same id then is a contact change.
CREATE TABLE user_tombstones (
    institution_id text NOT NULL,
    user_id        text NOT NULL,
    sealed         bytea NOT NULL,
    deleted_at     timestamptz NOT NULL,
    PRIMARY KEY (institution_id, user_id)
);

-- +goose Down
DROP TABLE user_tombstones;
DROP TABLE rate_events;
CREATE TABLE rate_counters (
    key          bytea PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL
);
