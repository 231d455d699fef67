-- +goose Up
-- The PostgreSQL twin of internal/store/sqlite/migrations/00001_init.sql:
-- same tables, versions and meaning, written in this dialect. Times are
-- timestamptz kept at millisecond precision (as SQLite's integers are);
-- a time that is "not yet" (used_at, retired_at) is NULL.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE institutions (
    id         text PRIMARY KEY,
    is_default boolean NOT NULL DEFAULT false,
    settings   bytea NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE users (
    institution_id text NOT NULL REFERENCES institutions (id) ON DELETE CASCADE,
    id             text NOT NULL,
    username       text NOT NULL,
    username_key   text NOT NULL,
    email          text NOT NULL DEFAULT '',
    phone          text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'active',
    password_hash  text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (institution_id, id)
);
CREATE UNIQUE INDEX users_username ON users (institution_id, username_key);

CREATE TABLE password_history (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id text NOT NULL,
    user_id        text NOT NULL,
    hash           text NOT NULL,
    created_at     timestamptz NOT NULL,
    FOREIGN KEY (institution_id, user_id) REFERENCES users (institution_id, id) ON DELETE CASCADE
);
CREATE INDEX password_history_user ON password_history (institution_id, user_id, id);

CREATE TABLE clients (
    id             text PRIMARY KEY,
    institution_id text NOT NULL,
    name           text NOT NULL DEFAULT '',
    secret_hash    bytea NOT NULL,
    scopes         text[] NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE TABLE signing_keys (
    id          text PRIMARY KEY,
    alg         text NOT NULL,
    private_key bytea NOT NULL,
    public_key  bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

CREATE TABLE tokens (
    hash           bytea PRIMARY KEY,
    institution_id text NOT NULL,
    user_id        text NOT NULL,
    purpose        text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX tokens_user ON tokens (institution_id, user_id) WHERE used_at IS NULL;
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE deliveries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id text NOT NULL,
    user_id        text NOT NULL,
    kind           text NOT NULL,
    channel        text NOT NULL,
    destination    text NOT NULL,
    state          text NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX deliveries_user ON deliveries (institution_id, user_id, id);
CREATE INDEX deliveries_state ON deliveries (state, id);

CREATE TABLE audit (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time           timestamptz NOT NULL,
    action         text NOT NULL,
    institution_id text NOT NULL DEFAULT '',
    user_id        text NOT NULL DEFAULT '',
    client_id      text NOT NULL DEFAULT '',
    ip             text NOT NULL DEFAULT '',
    transaction_id text NOT NULL DEFAULT '',
    outcome        text NOT NULL DEFAULT ''
);
CREATE INDEX audit_institution_time ON audit (institution_id, time);
CREATE INDEX audit_time ON audit (time);

-- Counter keys are built from what clients send (a client id, a username):
-- bytes, so that any key a client can make can be counted.
CREATE TABLE rate_counters (
    key          bytea PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL
);

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
