-- The Reporting API's figures that only the metrics showed, kept in the ledger like the rest:
-- every figure of a run is a column of sync_runs (src/model/figures.rs).
ALTER TABLE linkrunner.sync_runs
    ADD COLUMN reporting_days_left     bigint NOT NULL DEFAULT 0,
    ADD COLUMN reporting_pages         bigint NOT NULL DEFAULT 0,
    ADD COLUMN reporting_rows_inserted bigint NOT NULL DEFAULT 0,
    ADD COLUMN reporting_rows_changed  bigint NOT NULL DEFAULT 0;
