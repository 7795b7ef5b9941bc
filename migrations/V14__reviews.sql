-- V14: reviews and reports. The ledger of scheduled reports made: one row per kind and local day,
-- written in the transaction that queues the report's deliveries, so however many schedulers run
-- (or restart) the daily roll-up goes out once per day. Additive: a new table only.
CREATE TABLE IF NOT EXISTS report_runs (
    kind        text NOT NULL,
    day         date NOT NULL,
    made_at     timestamptz NOT NULL DEFAULT now(),
    -- Deliveries queued (0: nobody could be reached; see the scheduler's log).
    deliveries  integer NOT NULL,
    PRIMARY KEY (kind, day)
);
