-- A counter earns trust only by agreeing with rows it could have got wrong: agreement at zero
-- (an empty campaign, or a counter that always reads 0) proves nothing. Counters trusted on
-- such an agreement lose that trust now; the next run reads their campaigns.
UPDATE linkrunner.sync_checkpoints
SET trusted_from = NULL
WHERE trusted_from IS NOT NULL AND COALESCE(rows_at_sync, 0) = 0;
