-- rejected_rows keeps items of the Reporting API that cannot be stored too (kind 'reporting':
-- an item listed twice with different values, a key too long to index, text Postgres cannot
-- store), under its campaign's display_id, so the rest of their day is stored.
ALTER TABLE linkrunner.rejected_rows DROP CONSTRAINT rejected_rows_kind_check;
ALTER TABLE linkrunner.rejected_rows ADD CONSTRAINT rejected_rows_kind_check
    CHECK (kind IN ('attributed_user', 'campaign', 'reporting'));
