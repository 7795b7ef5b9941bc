-- Principals: who holds a key decides what it may read and do (docs/SECURITY.md).
--
-- `integration` keys (every key made before this migration) submit requests and read the status
-- of their own; `agent` keys act as one agent on that agent's tickets; `supervisor` keys act on
-- every ticket, or on one team's; `admin` keys may do everything.
ALTER TABLE api_keys
    ADD COLUMN role  text NOT NULL DEFAULT 'integration'
        CHECK (role IN ('integration', 'agent', 'supervisor', 'admin')),
    -- The agent an `agent` key acts as.
    ADD COLUMN agent text REFERENCES agents (id),
    -- A `supervisor` key's team; NULL: every team.
    ADD COLUMN team  text,
    ADD CONSTRAINT api_keys_agent_role CHECK ((role = 'agent') = (agent IS NOT NULL)),
    ADD CONSTRAINT api_keys_team_role CHECK (team IS NULL OR role = 'supervisor');

-- The key that submitted each message through the gateway (NULL: published to RabbitMQ
-- directly, or stored before this migration). It decides whose request status a key may read
-- and on which tickets an integration may act for the customer.
ALTER TABLE ticket_messages ADD COLUMN submitted_by text;

-- A thread key may lead to several tickets (a chat session reopened after its ticket closed,
-- a reference claimed by a message of another customer); a key is never re-pointed, and the
-- intake stage joins a message only to a ticket of the same customer.
ALTER TABLE thread_keys DROP CONSTRAINT thread_keys_pkey;
ALTER TABLE thread_keys ADD PRIMARY KEY (key, ticket_id);
