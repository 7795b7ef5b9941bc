-- V13: the service record (售后服务记录, seed 000 table 1, seed 002 record table) and the
-- customer's confirmation. Additive: existing tickets get an empty record and no confirmation.
-- `record`: the fields of `core::record::ServiceRecord` (product, device model, when it
-- happened, what was tried, expectation, customer urgency, helper, appointment, engineer
-- arrival, callback, archive date, custom fields declared in the policy).
ALTER TABLE tickets ADD COLUMN record jsonb NOT NULL DEFAULT '{}'::jsonb;
-- `confirmation`: {"at", "method": online|signature|phone, "by", "note"}; NULL: not confirmed.
ALTER TABLE tickets ADD COLUMN confirmation jsonb;
-- The helper (协助人) may read and work the ticket: their tickets are found by this index.
CREATE INDEX tickets_record_helper ON tickets ((record->>'helper')) WHERE record ? 'helper';
-- Record fields sent on a message threaded onto an existing ticket are kept with the message
-- (an agent applies them with `update_record`); the opening message's fields are the ticket's.
ALTER TABLE ticket_messages ADD COLUMN record jsonb;
