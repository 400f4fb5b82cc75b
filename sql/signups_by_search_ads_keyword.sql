-- Which Apple Search Ads keywords brought the signups, and how many each?
-- Needs sync --attribution-details; counts attributed-user rows whose user Linkrunner
-- attributes to Apple Search Ads now.
SELECT keyword_id,
       keyword_name,
       count(*)                AS signups,
       count(DISTINCT user_id) AS users
FROM linkrunner.attributed_users_with_details
WHERE ad_network = 'APPLE_SEARCH_ADS'
GROUP BY keyword_id, keyword_name
ORDER BY signups DESC, keyword_name;
