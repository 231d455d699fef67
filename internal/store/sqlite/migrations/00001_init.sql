-- +goose Up
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE institutions (
    id         TEXT PRIMARY KEY,
    is_default INTEGER NOT NULL DEFAULT 0,
    settings   BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    institution_id TEXT NOT NULL REFERENCES institutions(id) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL,
    email          TEXT NOT NULL DEFAULT '',
    phone          TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL DEFAULT 'active',
    password_hash  TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (institution_id, id)
) STRICT;
CREATE UNIQUE INDEX users_username ON users (institution_id, username_key);

CREATE TABLE password_history (
    id             INTEGER PRIMARY KEY,
    institution_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    hash           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    FOREIGN KEY (institution_id, user_id) REFERENCES users (institution_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX password_history_user ON password_history (institution_id, user_id, id);

CREATE TABLE clients (
    id             TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    secret_hash    BLOB NOT NULL,
    scopes         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE tokens (
    hash           BLOB PRIMARY KEY,
    institution_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX tokens_user ON tokens (institution_id, user_id) WHERE used_at = 0;
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE deliveries (
    id             INTEGER PRIMARY KEY,
    institution_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    channel        TEXT NOT NULL,
    destination    TEXT NOT NULL,
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_user ON deliveries (institution_id, user_id, id);
CREATE INDEX deliveries_state ON deliveries (state, id);

CREATE TABLE audit (
    id             INTEGER PRIMARY KEY,
    time           INTEGER NOT NULL,
    action         TEXT NOT NULL,
    institution_id TEXT NOT NULL DEFAULT '',
    user_id        TEXT NOT NULL DEFAULT '',
    client_id      TEXT NOT NULL DEFAULT '',
    ip             TEXT NOT NULL DEFAULT '',
    transaction_id TEXT NOT NULL DEFAULT '',
    outcome        TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_institution_time ON audit (institution_id, time);
CREATE INDEX audit_time ON audit (time);

CREATE TABLE rate_counters (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE rate_counters;
DROP TABLE audit;
DROP TABLE deliveries;
DROP TABLE tokens;
DROP TABLE signing_keys;
DROP TABLE clients;
DROP TABLE password_history;
DROP TABLE users;
DROP TABLE institutions;
DROP TABLE meta;
