-- Why a run's attribution look-ups stopped before the ids due were done: their deadline
-- (--lookup-time), a Retry-After longer than it (with when to try again), failures in a row.
-- NULL when they did not stop short, or when the run made none.
ALTER TABLE linkrunner.sync_runs ADD COLUMN lookups_stopped text;
