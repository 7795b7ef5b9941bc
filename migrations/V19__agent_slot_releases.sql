-- A slot an agent frees (a ticket resolved, transferred or merged away) is written here, one row
-- per slot, instead of decrementing `agents.open_tickets` under the agent's row lock. Resolving
-- took the assignee's row until the lifecycle batch committed, and a batch of a hundred resolves
-- names nearly every agent, so two lifecycle consumers could only take turns. An insert waits for
-- nobody.
--
-- `agents.open_tickets` minus the agent's rows here is the load. Whoever locks an agent's row
-- (`store::locks::lock`: the assign stage, a claim, a reopening) folds its rows into the count and
-- deletes them in the same transaction, and the scheduler's sweep folds what nobody locked, so the
-- table holds only the slots freed since. Readers that take no lock read `agent_loads`.
--
-- No foreign key to `agents`: checking it would take a share lock on the agent's row, which waits
-- for the very lock this table avoids. Agents are never deleted.
CREATE TABLE agent_slot_releases (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent        text NOT NULL,
    released_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_slot_releases_agent ON agent_slot_releases (agent);

-- Agents with their load as it is: what is counted, less the slots freed since.
CREATE VIEW agent_loads AS
SELECT a.id, a.name, a.team, a.languages, a.channels, a.skills, a.presence, a.max_open,
       greatest(a.open_tickets - (SELECT count(*) FROM agent_slot_releases r WHERE r.agent = a.id), 0)::integer
           AS open_tickets,
       a.idle_since, a.updated_at
FROM agents a;
