-- +goose Up
-- SPEC §10: every cap and window slides (a true hour, a true 24 h). A
-- counter is the events counted against its key, each with its time;
-- events older than the key's window are dropped as the key is hit.
DROP TABLE rate_counters;
CREATE TABLE rate_events (
    key TEXT NOT NULL,
    at  INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_events_key_at ON rate_events (key, at);

-- A deleted user's contacts, sealed, for contactChangeCooldown after the
-- deletion: re-creating the same id then is a contact change.
CREATE TABLE user_tombstones (
    institution_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    sealed         BLOB NOT NULL,
    deleted_at     INTEGER NOT NULL,
    PRIMARY KEY (institution_id, user_id)
) STRICT;

-- +goose Down
DROP TABLE user_tombstones;
DROP TABLE rate_events;
CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
