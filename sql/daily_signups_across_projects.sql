-- How many signups did each project's campaigns get per New York day, with several Linkrunner
-- projects in one warehouse? Each project syncs into a schema of its own (--schema app_one,
-- --schema app_two); add one UNION ALL branch per project, naming it in the first column.
WITH signups AS (
    SELECT 'app_one' AS project, d.day, d.campaign_display_id, c.name AS campaign_name, d.signups
    FROM app_one.daily_signups_in('America/New_York') d
    LEFT JOIN app_one.campaigns c ON c.display_id = d.campaign_display_id
    UNION ALL
    SELECT 'app_two', d.day, d.campaign_display_id, c.name, d.signups
    FROM app_two.daily_signups_in('America/New_York') d
    LEFT JOIN app_two.campaigns c ON c.display_id = d.campaign_display_id
)
SELECT project, day, campaign_display_id, campaign_name, sum(signups)::bigint AS signups
FROM signups
GROUP BY project, day, campaign_display_id, campaign_name
ORDER BY project, day, campaign_display_id;
