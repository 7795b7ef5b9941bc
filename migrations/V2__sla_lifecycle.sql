-- SLA clocks, timers, escalation ladders and the ticket lifecycle after assignment.

ALTER TABLE tickets
    ADD COLUMN first_responded_at timestamptz,
    ADD COLUMN last_update_at     timestamptz,
    ADD COLUMN resolved_at        timestamptz,
    ADD COLUMN closed_at          timestamptz,
    -- A reopened ticket's resolution clock starts again here.
    ADD COLUMN sla_restarted_at   timestamptz,
    ADD COLUMN resolution         jsonb,
    ADD COLUMN rating             smallint CHECK (rating BETWEEN 1 AND 5),
    ADD COLUMN rating_comment     text,
    -- Who owns a reopened or escalated ticket above the assignee.
    ADD COLUMN supervisor         text;

-- Waiting-for-customer intervals: the resolution clock does not run inside them.
CREATE TABLE ticket_pauses (
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    PRIMARY KEY (ticket_id, started_at)
);

-- Deadlines to act on. Written in the transaction of the change that sets them; moved or
-- cancelled by the change that makes them moot; claimed by schedulers with SKIP LOCKED.
CREATE TABLE sla_timers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    -- breach:<target> | escalate:<target> | auto_close
    purpose     text NOT NULL,
    due_at      timestamptz NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
    fired_at    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sla_timers_due ON sla_timers (due_at) WHERE state = 'pending';
CREATE UNIQUE INDEX sla_timers_one_pending ON sla_timers (ticket_id, purpose) WHERE state = 'pending';

-- One escalation per ticket and missed target: where its ladder stands.
CREATE TABLE escalations (
    ticket_id        bigint NOT NULL REFERENCES tickets (id),
    target           text NOT NULL,
    ladder           text NOT NULL,
    breached_at      timestamptz NOT NULL,
    last_step        integer,
    last_repeat      integer,
    last_fired_at    timestamptz,
    last_notified    text,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    stopped_at       timestamptz,
    stop_reason      text,
    PRIMARY KEY (ticket_id, target)
);

-- Messages to publish for changes that no input message can retry (timers, HTTP actions).
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
