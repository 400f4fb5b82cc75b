-- How many signups did each campaign get per local day in New York? Days follow the zone's
-- calendar, DST included; put another IANA zone in the literal (e.g. 'Europe/Berlin').
SELECT d.day,
       d.campaign_display_id,
       c.name AS campaign_name,
       sum(d.signups)::bigint AS signups
FROM linkrunner.daily_signups_in('America/New_York') d
LEFT JOIN linkrunner.campaigns c ON c.display_id = d.campaign_display_id
GROUP BY d.day, d.campaign_display_id, c.name
ORDER BY d.day, d.campaign_display_id;
