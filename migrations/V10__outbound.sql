-- V10: the outbound side. Deliveries are the messages Switchboard sends (staff notifications,
-- messages to customers, webhook posts), each decided in the transaction that records the event
-- it answers and sent by the deliver stage; webhook subscriptions; integrations' callback URLs;
-- satisfaction surveys and follow-up visits (回访).

-- Where an integration (chat, app, SMS gateway) takes messages for its customers, and the
-- secret its callbacks are signed with (Standard Webhooks, `whsec_…`).
ALTER TABLE api_keys
    ADD COLUMN callback_url    text,
    ADD COLUMN callback_secret text;

CREATE TABLE webhook_endpoints (
    id              text PRIMARY KEY,
    url             text NOT NULL,
    -- Event type patterns: `ticket.resolved`, `ticket.*`, `sla.*`, `*`.
    events          text[] NOT NULL,
    -- `whsec_` + base64: the receiver verifies with it, so it is kept, not hashed.
    secret          text NOT NULL,
    description     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz,
    disabled_reason text,
    -- The first failure of the current run of failures (NULL after a success).
    failing_since   timestamptz
);

CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    -- Deterministic: one decision has one key, so deciding again inserts nothing.
    key             text NOT NULL UNIQUE,
    -- What the receiver recognises a retry by: `webhook-id`, the email's Message-ID.
    msg_id          text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('webhook', 'staff', 'customer')),
    purpose         text NOT NULL,
    ticket_id       bigint REFERENCES tickets (id) ON DELETE CASCADE,
    number          text,
    -- The event's sequence: a lane sends one ticket's deliveries in this order.
    seq             integer,
    -- Deliveries of one lane (an endpoint, a person, the customer) for one ticket go one at a time.
    lane            text NOT NULL,
    endpoint_id     text REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    key_id          text,
    transport       text NOT NULL CHECK (transport IN ('webhook', 'callback', 'email', 'wecom', 'dingtalk', 'feishu')),
    target          text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Past this, a failing delivery is given up (and dead-lettered).
    give_up_at      timestamptz NOT NULL,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_lane ON deliveries (lane, ticket_id, seq) WHERE state = 'pending';
CREATE INDEX deliveries_ticket ON deliveries (ticket_id, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id DESC) WHERE endpoint_id IS NOT NULL;

CREATE TABLE surveys (
    number      text PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    channel     text NOT NULL,
    dimensions  text[] NOT NULL,
    -- SHA-256 of the link's token: the link is the customer's only credential.
    token_hash  text NOT NULL UNIQUE,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz,
    score       smallint CHECK (score BETWEEN 1 AND 5),
    scores      jsonb,
    comment     text
);
CREATE INDEX surveys_ticket ON surveys (ticket_id);

CREATE TABLE follow_ups (
    id         bigserial PRIMARY KEY,
    -- Deterministic, like a delivery's: deciding again creates nothing.
    key        text NOT NULL UNIQUE,
    ticket_id  bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    number     text NOT NULL,
    team       text,
    reason     text NOT NULL,
    due_at     timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at    timestamptz,
    done_by    text,
    outcome    text
);
CREATE INDEX follow_ups_open ON follow_ups (team, due_at) WHERE done_at IS NULL;
