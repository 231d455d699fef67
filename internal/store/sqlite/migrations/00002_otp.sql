-- +goose Up
-- One live OTP per user: a newer one replaces (kills) the older.
CREATE TABLE otps (
    institution_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    mac            BLOB NOT NULL,
    channel        TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts   INTEGER NOT NULL,
    used_at        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (institution_id, user_id)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE otps;
