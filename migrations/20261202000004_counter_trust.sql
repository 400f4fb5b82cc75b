-- A campaign's attributed_users counter can lag its rows, read 0 or disagree with them, so a
-- run skips a campaign only while its counter has been seen to agree with the rows.
-- rows_at_sync: the rows counted when a run last read the campaign to its end (those attributed
-- by the time the list was read: stored ones when the stored history reaches the campaign's
-- creation, else pagination.total of its whole life). counter_lied_at: when a read last found
-- counter and rows apart. trusted_from: from when the counter is trusted; NULL while it is not.
ALTER TABLE linkrunner.sync_checkpoints
    ADD COLUMN rows_at_sync    bigint,
    ADD COLUMN counter_lied_at timestamptz,
    ADD COLUMN trusted_from    timestamptz;

-- Why each run read the campaigns it read (campaigns_skipped counts those it did not).
ALTER TABLE linkrunner.sync_runs
    ADD COLUMN campaigns_new       integer NOT NULL DEFAULT 0,
    ADD COLUMN campaigns_changed   integer NOT NULL DEFAULT 0,
    ADD COLUMN campaigns_untrusted integer NOT NULL DEFAULT 0,
    ADD COLUMN campaigns_due       integer NOT NULL DEFAULT 0,
    ADD COLUMN campaigns_requested integer NOT NULL DEFAULT 0;

-- data_freshness gains, per campaign: whether its counter is trusted, and confirmed_at, when a
-- run last confirmed it current (read it to its end, or found its trusted counter unchanged).
-- An untrusted counter never confirms anything.
CREATE OR REPLACE VIEW linkrunner.data_freshness AS
WITH last_success AS (
    SELECT run_id, started_at, finished_at
    FROM linkrunner.sync_runs
    WHERE outcome = 'success'
    ORDER BY finished_at DESC NULLS LAST
    LIMIT 1
),
stored AS (
    SELECT campaign_display_id,
           max(attributed_at)  AS last_signup_at,
           max(last_synced_at) AS rows_changed_at
    FROM linkrunner.attributed_users
    GROUP BY campaign_display_id
)
SELECT c.display_id              AS campaign_display_id,
       c.name                    AS campaign_name,
       c.active,
       c.deleted_at IS NOT NULL  AS deleted,
       k.covered_from,
       k.synced_until,
       now() - k.synced_until    AS behind,
       k.updated_at              AS checkpoint_updated_at,
       k.last_run_id             AS checkpoint_run_id,
       s.last_signup_at,
       s.rows_changed_at,
       c.changed_at              AS listing_changed_at,
       c.last_seen_at            AS last_listed_at,
       r.run_id                  AS last_success_run_id,
       r.started_at              AS last_success_started_at,
       r.finished_at             AS last_success_finished_at,
       COALESCE(k.trusted_from <= now(), false) AS counter_trusted,
       CASE WHEN k.trusted_from <= now() THEN k.checked_at ELSE k.verified_at END AS confirmed_at
FROM linkrunner.campaigns c
LEFT JOIN linkrunner.sync_checkpoints k ON k.campaign_display_id = c.display_id
LEFT JOIN stored s ON s.campaign_display_id = c.display_id
LEFT JOIN last_success r ON true;
