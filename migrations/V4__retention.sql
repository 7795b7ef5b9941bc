-- Retention (SPEC §7): legal holds, anonymisation bookkeeping, and the transition log
-- partitioned by month so that expired months are dropped whole instead of deleted row by row.

-- When a ticket was anonymised (NULL: never); the retention job skips these.
ALTER TABLE tickets ADD COLUMN anonymised_at timestamptz;
CREATE INDEX tickets_closed_at ON tickets (closed_at) WHERE state = 'closed';

-- A legal hold stops the retention job for one ticket or for every ticket of one customer.
-- `customer` is what the operator gave: a customer id, a phone number or an email address, and
-- it matches a ticket's customer_id exactly, its email case-insensitively, or its phone by
-- digits. Released holds stay as a record of who was held, why and until when.
CREATE TABLE legal_holds (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    bigint REFERENCES tickets (id),
    customer     text,
    reason       text NOT NULL DEFAULT '',
    placed_at    timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    CHECK ((ticket_id IS NULL) <> (customer IS NULL))
);
CREATE UNIQUE INDEX legal_holds_active_ticket ON legal_holds (ticket_id)
    WHERE released_at IS NULL AND ticket_id IS NOT NULL;
CREATE UNIQUE INDEX legal_holds_active_customer ON legal_holds (customer)
    WHERE released_at IS NULL AND customer IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- ticket_transitions becomes range-partitioned on `at`: one partition per UTC month
-- (ticket_transitions_pYYYYMM) plus a default partition for anything outside them.
--
-- * The primary key must contain the partition key, so it is (ticket_id, seq, at). seq stays
--   unique per ticket because every writer guards on the ticket's version and writes
--   seq = the new version in the same transaction.
-- * The foreign key to tickets is kept (partitioned tables may reference a plain table).
--   Purging a ticket therefore deletes its remaining transition rows first; months that hold
--   only expired tickets are dropped whole before that, so the row-by-row part is the rest.
-- * Existing rows are copied into their months.

ALTER TABLE ticket_transitions RENAME TO ticket_transitions_v3;
ALTER TABLE ticket_transitions_v3 RENAME CONSTRAINT ticket_transitions_pkey TO ticket_transitions_v3_pkey;
ALTER TABLE ticket_transitions_v3 RENAME CONSTRAINT ticket_transitions_ticket_id_fkey TO ticket_transitions_v3_ticket_id_fkey;
ALTER INDEX ticket_transitions_at RENAME TO ticket_transitions_v3_at;

CREATE TABLE ticket_transitions (
    ticket_id       bigint NOT NULL REFERENCES tickets (id),
    seq             integer NOT NULL,
    from_state      text,
    to_state        text NOT NULL,
    at              timestamptz NOT NULL,
    actor           text NOT NULL,
    reason          text NOT NULL,
    policy_version  text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (ticket_id, seq, at)
) PARTITION BY RANGE (at);
CREATE INDEX ticket_transitions_at ON ticket_transitions (at);
CREATE TABLE ticket_transitions_default PARTITION OF ticket_transitions DEFAULT;

-- Creates the monthly partitions covering [p_from, p_to] that do not exist yet, and returns
-- their names. Rows that landed in the default partition (a month not created in time, or
-- backdated data) are moved into their new month: the partition is built detached, filled, then
-- attached, which locks the parent only in SHARE UPDATE EXCLUSIVE mode, so inserts carry on.
-- Names resolve through search_path, so the function works in whichever schema it is called.
CREATE FUNCTION ensure_transition_partitions(p_from timestamptz, p_to timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    oldest  timestamptz;
    m       timestamp;
    lo      timestamptz;
    hi      timestamptz;
    part    text;
BEGIN
    EXECUTE 'SELECT min(at) FROM ticket_transitions_default' INTO oldest;
    m := date_trunc('month', least(p_from, coalesce(oldest, p_from)) AT TIME ZONE 'UTC');
    WHILE (m AT TIME ZONE 'UTC') <= p_to LOOP
        lo := m AT TIME ZONE 'UTC';
        hi := (m + interval '1 month') AT TIME ZONE 'UTC';
        part := 'ticket_transitions_p' || to_char(m, 'YYYYMM');
        IF to_regclass(quote_ident(part)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE ticket_transitions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM ticket_transitions_default WHERE at >= $1 AND at < $2 RETURNING *)
                 INSERT INTO %I SELECT * FROM moved', part)
                USING lo, hi;
            -- Bounds spelled in UTC, whatever the session's DateStyle and TimeZone.
            EXECUTE format('ALTER TABLE ticket_transitions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           part, to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
                           to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
            RETURN NEXT part;
        END IF;
        m := m + interval '1 month';
    END LOOP;
END
$$;

SELECT count(*) FROM ensure_transition_partitions(
    coalesce((SELECT min(at) FROM ticket_transitions_v3), now()),
    now() + interval '3 months');

INSERT INTO ticket_transitions SELECT * FROM ticket_transitions_v3;
DROP TABLE ticket_transitions_v3;
