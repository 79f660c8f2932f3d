-- Storage for the scheduler's hot path (a pass reads the pending queue, then rewrites agents).

-- The pending queue in the order a pass reads it (`ORDER BY priority DESC, created_at, id
-- LIMIT n`): an index scan that stops after n rows, where the (status, priority) index of the
-- original still sorted every PENDING row of a large backlog (an on-disk sort at 100,000 rows).
-- Partial, so a session leaving PENDING adds no entry to it.
CREATE INDEX ix_sessions_pending_queue ON sessions (priority DESC, created_at, id)
    WHERE status = 'PENDING';

-- Room for in-page (HOT) updates of agent rows. A pass rewrites `agents.occupied_slots` of every
-- agent it places sessions on, and every terminated kernel rewrites it again. The column is in no
-- index, so PostgreSQL can keep the new row version on the same page without touching the
-- table's indexes -- but only when that page has free space, which a 100% fillfactor never leaves
-- after agents are inserted in bulk. Half-empty pages cost little (one row per agent).
ALTER TABLE agents SET (fillfactor = 50);
