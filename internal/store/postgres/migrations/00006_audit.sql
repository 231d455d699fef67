-- +goose Up
-- SPEC §12: every audit record reachable by a cursor, oldest first, even
-- while writers commit out of order. An identity value is taken at
-- insert, not at commit, so "after id N" can skip a lower id committed
-- later. Each row therefore keeps the id of the transaction that wrote it;
-- a page lists only rows of transactions older than every transaction of
-- this database still running, ordered by (txid, id): a row that becomes
-- visible later always sorts after every row already listed.
-- count is how many refused requests an aggregated failure record stands
-- for (1 for every other record).
ALTER TABLE audit ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE audit ADD COLUMN count integer NOT NULL DEFAULT 1;
DROP INDEX audit_institution_time;
CREATE INDEX audit_txid ON audit (txid, id);
CREATE INDEX audit_institution_txid ON audit (institution_id, txid, id);

-- +goose Down
DROP INDEX audit_institution_txid;
DROP INDEX audit_txid;
CREATE INDEX audit_institution_time ON audit (institution_id, time);
ALTER TABLE audit DROP COLUMN count;
ALTER TABLE audit DROP COLUMN txid;
