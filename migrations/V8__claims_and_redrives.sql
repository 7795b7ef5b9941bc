-- The outbox relay claims rows for a while instead of holding a transaction open while the
-- broker confirms (a broker under a memory alarm can block a publish for minutes): claimed rows
-- are deleted once confirmed, and a claim that lapses (the relay died) is taken again.
ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
CREATE INDEX outbox_unclaimed ON outbox (id) WHERE claimed_until IS NULL;

-- The sweeper's record of tickets it re-drove: a ticket whose next pipeline step never happened
-- (its work message lost or dead-lettered) is re-driven a few times per version, not forever.
CREATE TABLE ticket_redrives (
    ticket_id  bigint PRIMARY KEY REFERENCES tickets (id),
    version    integer NOT NULL,
    attempts   integer NOT NULL,
    last_at    timestamptz NOT NULL
);
