-- +goose Up
-- SPEC §7: contact-change cooldown, dispute lock, knowledge facts.
-- NULL times mean "never" (SQLite's 0).
ALTER TABLE users ADD COLUMN email_changed_at timestamptz;
ALTER TABLE users ADD COLUMN phone_changed_at timestamptz;
ALTER TABLE users ADD COLUMN locked_until timestamptz;
ALTER TABLE users ADD COLUMN facts jsonb NOT NULL DEFAULT '{}';

-- Maker-checker: an admin reset waiting for a second client's approval.
CREATE TABLE approvals (
    id             text PRIMARY KEY,
    institution_id text NOT NULL,
    user_id        text NOT NULL,
    method         text NOT NULL,
    requested_by   text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    approved_by    text NOT NULL DEFAULT '',
    approved_at    timestamptz
);

-- +goose Down
DROP TABLE approvals;
ALTER TABLE users DROP COLUMN facts;
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN phone_changed_at;
ALTER TABLE users DROP COLUMN email_changed_at;
