-- The push steers the pull: a campaign with a signup event whose user the warehouse does not
-- hold yet is read by the next run, whatever its counter says.
CREATE TABLE linkrunner.webhook_due (
    campaign_display_id text PRIMARY KEY,
    -- When the first such event arrived.
    since               timestamptz NOT NULL DEFAULT now()
);

-- Campaigns read because a webhook said they changed.
ALTER TABLE linkrunner.sync_runs ADD COLUMN campaigns_pushed bigint NOT NULL DEFAULT 0;
