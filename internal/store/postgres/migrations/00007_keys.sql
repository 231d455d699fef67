-- +goose Up
-- SPEC §9: client state and secret rotation. A deleted client keeps its
-- row (deleted_at set) so every replica can refuse its tokens.
ALTER TABLE clients ADD COLUMN disabled_at timestamptz;
ALTER TABLE clients ADD COLUMN deleted_at timestamptz;
ALTER TABLE clients ADD COLUMN old_secret_hash bytea NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN old_secret_until timestamptz;
ALTER TABLE clients ADD COLUMN updated_at timestamptz;

-- +goose Down
ALTER TABLE clients DROP COLUMN updated_at;
ALTER TABLE clients DROP COLUMN old_secret_until;
ALTER TABLE clients DROP COLUMN old_secret_hash;
ALTER TABLE clients DROP COLUMN deleted_at;
ALTER TABLE clients DROP COLUMN disabled_at;
