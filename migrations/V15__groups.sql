-- V15: group tickets for complex problems (seed 001 §5.2 复杂问题处理流程: a special group of the
-- departments concerned works one problem; seed 003 §一.3 多角色协同). `add_task` on a parent ticket
-- opens a child ticket (a task) in another team's queue: the child links `task_of` its parent,
-- the parent `task` to each child. Additive: existing links keep their kinds.
ALTER TABLE ticket_links DROP CONSTRAINT ticket_links_kind_check;
ALTER TABLE ticket_links ADD CONSTRAINT ticket_links_kind_check
    CHECK (kind IN ('related', 'duplicate_of', 'duplicate', 'follow_up_of', 'follow_up', 'task_of', 'task'));
-- A task has one parent.
CREATE UNIQUE INDEX ticket_links_one_parent ON ticket_links (ticket_id) WHERE kind = 'task_of';
