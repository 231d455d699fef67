-- +goose Up
-- SPEC §15: how a client authenticates (client_secret_basic,
-- private_key_jwt with its public JWK Set, tls_client_auth by subject DN),
-- whether it must use DPoP, and the single-use values (assertion and DPoP
-- proof jti) every replica checks.
ALTER TABLE clients ADD COLUMN auth_method text NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN jwks bytea NOT NULL DEFAULT '\x';
ALTER TABLE clients ADD COLUMN tls_subject text NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_dpop boolean NOT NULL DEFAULT false;

CREATE TABLE used_once (
    key        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX used_once_expiry ON used_once (expires_at);

-- +goose Down
DROP TABLE used_once;
ALTER TABLE clients DROP COLUMN require_dpop;
ALTER TABLE clients DROP COLUMN tls_subject;
ALTER TABLE clients DROP COLUMN jwks;
ALTER TABLE clients DROP COLUMN auth_method;
