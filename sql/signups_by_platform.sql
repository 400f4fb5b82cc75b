-- How many of each campaign's signups came from iOS and from Android devices?
-- platform is NULL when the device sent no identifier (see attributed_users_clean).
SELECT campaign_display_id,
       platform,
       count(*) AS signups
FROM linkrunner.attributed_users_clean
GROUP BY campaign_display_id, platform
ORDER BY campaign_display_id, platform NULLS LAST;
