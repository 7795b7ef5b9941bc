-- The ledger's outputs as the JSON text the stage serialised when it made its messages. Postgres
-- no longer parses every record into jsonb on the way in (nothing queries inside a record: it is
-- read back whole, by message id, when a message is redelivered), and a redelivery publishes the
-- very bytes that went out the first time. Both changes are to the catalogue only, so the table is
-- not rewritten: rows written before keep their jsonb `outputs` until retention removes them, and
-- readers take whichever column a row has. Every worker migrates at start, and the ledger is the
-- busiest table: rather than queue every stage behind a long transaction on it (a retention run),
-- give up after a while; the worker exits with the error and is started again.
SET LOCAL lock_timeout = '10s';
ALTER TABLE processed_messages ALTER COLUMN outputs DROP NOT NULL;
ALTER TABLE processed_messages ADD COLUMN outputs_text text;
ALTER TABLE processed_messages
    ADD CONSTRAINT processed_messages_outputs_present
    CHECK (outputs IS NOT NULL OR outputs_text IS NOT NULL) NOT VALID;
DO $$
BEGIN
    ALTER TABLE processed_messages ALTER COLUMN outputs_text SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: the ledger stays compressed with pglz';
END
$$;
