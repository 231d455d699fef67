-- +goose Up
-- One live OTP per user: a newer one replaces (kills) the older.
CREATE TABLE otps (
    institution_id text NOT NULL,
    user_id        text NOT NULL,
    mac            bytea NOT NULL,
    channel        text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL,
    used_at        timestamptz,
    PRIMARY KEY (institution_id, user_id)
);

-- +goose Down
DROP TABLE otps;
