-- +goose Up
-- A user's language (BCP 47 tag, '' when unknown): messages and the reset
-- page speak it when the institution offers it.
ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE users DROP COLUMN locale;
