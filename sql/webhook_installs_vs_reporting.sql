-- How many install webhooks did each campaign get per local day in Kolkata, how many of those
-- devices signed up, and how do they compare with the Reporting API's installs (--reporting)?
-- The reporting columns fill only when the zone is the project's timezone; put that zone here.
SELECT i.day,
       i.campaign_display_id,
       c.name AS campaign_name,
       i.install_events,
       i.converted,
       i.install_to_signup,
       i.reporting_installs,
       i.events_per_reported_install,
       i.reporting_settled,
       i.whole_day
FROM linkrunner.daily_webhook_installs_in('Asia/Kolkata') i
LEFT JOIN linkrunner.campaigns c ON c.display_id = i.campaign_display_id
ORDER BY i.day, i.campaign_display_id NULLS FIRST;
