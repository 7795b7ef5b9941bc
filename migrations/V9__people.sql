-- People: users with personal tokens, the agents' work list and the actions a desk needs.

-- A person who signs in to the desk or the API: an agent (tied to a roster agent), a supervisor
-- (of one team, or of every team) or an admin. Only the token's SHA-256 is stored; SSO users
-- (OpenID Connect) may have no token at all. A disabled user's token stops working.
CREATE TABLE users (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent        text REFERENCES agents (id),
    team         text,
    email        text,
    token_hash   text UNIQUE,
    -- The identity provider's `sub` this user signs in as: bound by an admin or at the first
    -- SSO sign-in, after which a token with another `sub` naming this user is refused.
    sso_subject  text UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz,
    CONSTRAINT users_agent_role CHECK ((role = 'agent') = (agent IS NOT NULL)),
    CONSTRAINT users_team_role CHECK (team IS NULL OR role = 'supervisor')
);
-- Names and emails identify a person (an SSO claim names one of them): unique among enabled users.
CREATE UNIQUE INDEX users_name ON users (lower(name)) WHERE disabled_at IS NULL;
CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE disabled_at IS NULL AND email IS NOT NULL;
CREATE UNIQUE INDEX users_agent ON users (agent) WHERE disabled_at IS NULL;

-- Search: the words of a ticket's subject and body as the list endpoint's `q` finds them
-- (`core::search`: Chinese as characters and character pairs, other scripts as words), written
-- by the intake stage. NULL until written; the scheduler fills in tickets stored before.
ALTER TABLE tickets ADD COLUMN search_terms text[];
CREATE INDEX tickets_search ON tickets USING gin (search_terms);
-- A word outside the default 100 most common terms would be estimated at 0.5% of tickets, and
-- the planner would walk the deadline index reading millions of rows for a word nobody wrote;
-- finer statistics keep rare words on the GIN index (measured: 1,482 ms → 0.5 ms on 1M).
ALTER TABLE tickets ALTER COLUMN search_terms SET STATISTICS 1000;
-- What the scheduler still has to index (empty once caught up).
CREATE INDEX tickets_unindexed ON tickets (id) WHERE search_terms IS NULL;

-- Deadlines renegotiated by a supervisor (`set_due`): target name -> due time; they replace what
-- the SLA rule gives until the ticket is reopened.
ALTER TABLE tickets ADD COLUMN due_overrides jsonb;

-- The earliest deadline still running, for `sort=due` and the at-risk/breached filters; NULL
-- once resolved or closed.
ALTER TABLE tickets ADD COLUMN next_due timestamptz GENERATED ALWAYS AS (
    CASE WHEN resolved_at IS NOT NULL OR closed_at IS NOT NULL THEN NULL
         WHEN first_responded_at IS NULL THEN least(first_response_due, resolution_due)
         ELSE resolution_due END
) STORED;
-- The work list's orders, each with the id as tie-break (the cursor is (key, id)).
CREATE INDEX tickets_team_due ON tickets (team, next_due, id);
-- Whole, not partial: `ORDER BY next_due NULLS LAST` over every ticket needs the NULL rows too.
CREATE INDEX tickets_due ON tickets (next_due, id);
CREATE INDEX tickets_assignee_due ON tickets (assignee, next_due, id) WHERE assignee IS NOT NULL;
CREATE INDEX tickets_team_received ON tickets (team, received_at, id);
CREATE INDEX tickets_received ON tickets (received_at, id);

-- Tickets linked by hand: related ones, and duplicates merged into another.
CREATE TABLE ticket_links (
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    other_id    bigint NOT NULL REFERENCES tickets (id),
    -- related | duplicate_of | duplicate (the other was merged into this one)
    kind        text NOT NULL CHECK (kind IN ('related', 'duplicate_of', 'duplicate')),
    actor       text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, other_id),
    CHECK (ticket_id <> other_id)
);
CREATE INDEX ticket_links_other ON ticket_links (other_id);

-- A category changed by a person: the classifier's training signal (what it said, what was right).
CREATE TABLE classifier_corrections (
    ticket_id      bigint NOT NULL REFERENCES tickets (id),
    at             timestamptz NOT NULL,
    from_category  text,
    to_category    text NOT NULL,
    actor          text NOT NULL,
    reason         text NOT NULL,
    PRIMARY KEY (ticket_id, at)
);
