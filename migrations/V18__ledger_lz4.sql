-- The processed-message ledger holds what each message published (events, work messages) and is
-- written for every message. Records over ~2 kB are compressed, with pglz by default; lz4
-- compresses several times faster at a similar ratio. Only values written from now on use it.
-- A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE processed_messages ALTER COLUMN outputs SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: the ledger stays compressed with pglz';
END
$$;
