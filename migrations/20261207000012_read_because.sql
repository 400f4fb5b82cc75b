-- Why the last run read each campaign, in the dry run's words ('skip' when it did not), so
-- `status` can say it without asking the API.
ALTER TABLE linkrunner.sync_checkpoints ADD COLUMN read_because text;
