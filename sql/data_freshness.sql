-- How fresh is each campaign's data, and when did the last successful sync run finish?
-- Never-synced campaigns (synced_until NULL) come first, then the furthest behind.
SELECT campaign_display_id,
       campaign_name,
       deleted,
       synced_until,
       behind,
       last_signup_at,
       rows_changed_at,
       last_success_finished_at
FROM linkrunner.data_freshness
ORDER BY behind DESC NULLS FIRST, campaign_display_id;
