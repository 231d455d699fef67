-- +goose Up
-- SPEC §9: client state and secret rotation. A deleted client keeps its
-- row (deleted_at set) so every replica can refuse its tokens.
ALTER TABLE clients ADD COLUMN disabled_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN old_secret_hash BLOB NOT NULL DEFAULT x'';
ALTER TABLE clients ADD COLUMN old_secret_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN updated_at;
ALTER TABLE clients DROP COLUMN old_secret_until;
ALTER TABLE clients DROP COLUMN old_secret_hash;
ALTER TABLE clients DROP COLUMN deleted_at;
ALTER TABLE clients DROP COLUMN disabled_at;
