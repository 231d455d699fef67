-- +goose Up
-- SPEC §15: how a client authenticates (client_secret_basic,
-- private_key_jwt with its public JWK Set, tls_client_auth by subject DN),
-- whether it must use DPoP, and the single-use values (assertion and DPoP
-- proof jti) every replica checks.
ALTER TABLE clients ADD COLUMN auth_method TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN jwks BLOB NOT NULL DEFAULT x'';
ALTER TABLE clients ADD COLUMN tls_subject TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_dpop INTEGER NOT NULL DEFAULT 0;

CREATE TABLE used_once (
    key        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX used_once_expiry ON used_once (expires_at);

-- +goose Down
DROP TABLE used_once;
ALTER TABLE clients DROP COLUMN require_dpop;
ALTER TABLE clients DROP COLUMN tls_subject;
ALTER TABLE clients DROP COLUMN jwks;
ALTER TABLE clients DROP COLUMN auth_method;
