-- V11: a customer's message on a closed ticket (or one resolved longer ago than the policy's
-- `[lifecycle] reopen_window`) opens a new ticket linked to the old one: `follow_up_of` from the
-- new ticket, `follow_up` from the old (the other is its follow-up).
ALTER TABLE ticket_links DROP CONSTRAINT ticket_links_kind_check;
ALTER TABLE ticket_links ADD CONSTRAINT ticket_links_kind_check
    CHECK (kind IN ('related', 'duplicate_of', 'duplicate', 'follow_up_of', 'follow_up'));
