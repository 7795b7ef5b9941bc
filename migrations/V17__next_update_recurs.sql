-- The next update recurs (issue 14, 004-25): once a lapse is recorded, a breach timer watches
-- the next one. Before, a ticket whose next update had lapsed once got no such timer again, so
-- an open ticket nobody touches would stay silent. Give each of them a timer due now: the
-- escalate stage records the current lapse if it is a new one and sets the timer for the next.
INSERT INTO sla_timers (ticket_id, purpose, due_at, payload)
SELECT e.ticket_id, 'breach:next_update', now(), '{"target": "next_update"}'
FROM escalations e
JOIN tickets t ON t.id = e.ticket_id
WHERE e.target = 'next_update'
  AND t.state IN ('queued', 'assigned', 'in_progress')
  AND NOT EXISTS (
      SELECT 1 FROM sla_timers s
      WHERE s.ticket_id = e.ticket_id AND s.purpose = 'breach:next_update' AND s.state = 'pending'
  );
