-- How many signups did each ad channel bring per UTC day, over all campaigns?
-- ad_channel is NULL for signups without one (organic links, affiliates).
SELECT day,
       ad_channel,
       sum(signups)::bigint AS signups
FROM linkrunner.daily_signups
GROUP BY day, ad_channel
ORDER BY day, ad_channel NULLS LAST;
