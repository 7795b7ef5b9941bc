-- V12: triage. A classification less confident than the policy's `[classification]
-- triage_threshold` flags the ticket `needs_triage`: routing sends it to the triage team (after
-- the urgent rule), the desk shows it with the classifier's two best candidates, and a person's
-- `reclassify` (their triage decision, recorded in classifier_corrections) clears the flag and
-- moves it to the team its category routes to.
ALTER TABLE tickets ADD COLUMN needs_triage boolean NOT NULL DEFAULT false;
-- The classifier's two most likely categories, best first: [{"category", "probability"}, …].
-- NULL for tickets classified before V12.
ALTER TABLE tickets ADD COLUMN category_candidates jsonb;
-- `GET /v1/tickets?needs_triage=true` by deadline: the flagged tickets are few.
CREATE INDEX tickets_needs_triage_due ON tickets (next_due, id) WHERE needs_triage;
