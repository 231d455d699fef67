-- +goose Up
-- SPEC §7: contact-change cooldown, dispute lock, knowledge facts.
ALTER TABLE users ADD COLUMN email_changed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN phone_changed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN facts TEXT NOT NULL DEFAULT '{}';

-- Maker-checker: an admin reset waiting for a second client's approval.
CREATE TABLE approvals (
    id             TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    method         TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    approved_by    TEXT NOT NULL DEFAULT '',
    approved_at    INTEGER NOT NULL DEFAULT 0
) STRICT;

-- +goose Down
DROP TABLE approvals;
ALTER TABLE users DROP COLUMN facts;
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN phone_changed_at;
ALTER TABLE users DROP COLUMN email_changed_at;
