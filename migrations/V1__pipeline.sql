-- Switchboard core schema: tickets, their messages and transitions, agents, and the bookkeeping
-- that makes every stage effectively-once.

CREATE TABLE teams (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    supervisor  text
);

CREATE TABLE agents (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    team          text NOT NULL REFERENCES teams (id),
    languages     text[] NOT NULL DEFAULT '{}',
    channels      text[] NOT NULL DEFAULT '{}',
    skills        text[] NOT NULL DEFAULT '{}',
    presence      text NOT NULL DEFAULT 'offline' CHECK (presence IN ('online', 'away', 'offline')),
    max_open      integer NOT NULL DEFAULT 5 CHECK (max_open >= 0),
    open_tickets  integer NOT NULL DEFAULT 0 CHECK (open_tickets >= 0),
    idle_since    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_team ON agents (team);

CREATE TABLE tickets (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number              text NOT NULL UNIQUE,
    channel             text NOT NULL,
    channel_message_id  text NOT NULL,
    customer            jsonb NOT NULL,
    subject             text,
    body                text NOT NULL,
    language            text,
    category            text,
    category_confidence double precision,
    priority            text,
    state               text NOT NULL,
    team                text,
    assignee            text REFERENCES agents (id),
    sla_rule            text,
    first_response_due  timestamptz,
    resolution_due      timestamptz,
    received_at         timestamptz NOT NULL,
    assigned_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL,
    UNIQUE (channel, channel_message_id)
);
CREATE INDEX tickets_queue ON tickets (team, resolution_due) WHERE state = 'queued';
CREATE INDEX tickets_state ON tickets (state);
CREATE INDEX tickets_assignee_open ON tickets (assignee) WHERE state <> 'closed';

-- Every customer message: the first one that opened the ticket and every reply threaded onto it.
CREATE TABLE ticket_messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id           bigint NOT NULL REFERENCES tickets (id),
    channel             text NOT NULL,
    channel_message_id  text NOT NULL,
    received_at         timestamptz NOT NULL,
    subject             text,
    body                text NOT NULL,
    quoted_history      text,
    attachments         jsonb NOT NULL DEFAULT '[]',
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, channel_message_id)
);
CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket_id);

-- Keys a later message can use to find its conversation: chat sessions, email Message-IDs,
-- ticket numbers.
CREATE TABLE thread_keys (
    key        text PRIMARY KEY,
    ticket_id  bigint NOT NULL REFERENCES tickets (id)
);

-- The audit trail: one row per state change, written with the ticket's update.
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
    PRIMARY KEY (ticket_id, seq)
);
CREATE INDEX ticket_transitions_at ON ticket_transitions (at);

-- Per-month ticket number counters; one row per YYYYMM.
CREATE TABLE ticket_counters (
    period  text PRIMARY KEY,
    last    bigint NOT NULL
);

-- Messages a stage has applied, with what it published, so a redelivery re-publishes instead of
-- applying twice.
CREATE TABLE processed_messages (
    message_id    text PRIMARY KEY,
    stage         text NOT NULL,
    outputs       jsonb NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_messages_at ON processed_messages (processed_at);
