-- Milestones between first response and resolution (issue 14 item 4): when each milestone
-- (`plan`, `diagnosis`, `workaround`) of a ticket was met, by name, e.g.
-- {"plan": "2026-12-06T03:00:00Z"}. NULL on existing tickets: none met yet. Additive.
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS milestones jsonb;
