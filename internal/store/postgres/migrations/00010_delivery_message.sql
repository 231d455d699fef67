-- +goose Up
-- The sealed message of a delivery that is still to be sent: written with
-- the row, read by the delivery worker, and cleared (NULL) once the
-- delivery is sent, logged or failed. The queue's job carries only the
-- delivery's id, so a message is sealed and stored once, not copied
-- through every state change of its job. message_ref is a random value
-- the message is sealed to (its associated data): the row's id is not
-- known before the row is written, and its user id changes when the user
-- is deleted.
ALTER TABLE deliveries ADD COLUMN message_ref bytea;
ALTER TABLE deliveries ADD COLUMN message bytea;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN message;
ALTER TABLE deliveries DROP COLUMN message_ref;
