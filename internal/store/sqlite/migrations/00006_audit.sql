-- +goose Up
-- SPEC §12: every audit record reachable by a cursor, oldest first. The
-- cursor is the id: SQLite has one writer, so ids are handed out in commit
-- order and a reader never sees a later id before an earlier one.
-- AUTOINCREMENT keeps an id from being reused once the purge has emptied
-- the table, so a cursor a client holds never skips a new record.
-- count is how many refused requests an aggregated failure record stands
-- for (1 for every other record).
CREATE TABLE audit_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    time           INTEGER NOT NULL,
    action         TEXT NOT NULL,
    institution_id TEXT NOT NULL DEFAULT '',
    user_id        TEXT NOT NULL DEFAULT '',
    client_id      TEXT NOT NULL DEFAULT '',
    ip             TEXT NOT NULL DEFAULT '',
    transaction_id TEXT NOT NULL DEFAULT '',
    outcome        TEXT NOT NULL DEFAULT '',
    count          INTEGER NOT NULL DEFAULT 1
) STRICT;
INSERT INTO audit_new (id, time, action, institution_id, user_id, client_id, ip, transaction_id, outcome)
    SELECT id, time, action, institution_id, user_id, client_id, ip, transaction_id, outcome FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_institution_id ON audit (institution_id, id);
CREATE INDEX audit_time ON audit (time);

-- +goose Down
CREATE TABLE audit_old (
    id             INTEGER PRIMARY KEY,
    time           INTEGER NOT NULL,
    action         TEXT NOT NULL,
    institution_id TEXT NOT NULL DEFAULT '',
    user_id        TEXT NOT NULL DEFAULT '',
    client_id      TEXT NOT NULL DEFAULT '',
    ip             TEXT NOT NULL DEFAULT '',
    transaction_id TEXT NOT NULL DEFAULT '',
    outcome        TEXT NOT NULL DEFAULT ''
) STRICT;
INSERT INTO audit_old SELECT id, time, action, institution_id, user_id, client_id, ip, transaction_id, outcome FROM audit;
DROP TABLE audit;
ALTER TABLE audit_old RENAME TO audit;
CREATE INDEX audit_institution_time ON audit (institution_id, time);
CREATE INDEX audit_time ON audit (time);
