-- How many users came organically and how many through each ad network, per UTC day?
-- Needs sync --attribution-details; a user's day is that of its first attribution.
SELECT day,
       attribution_type,
       ad_network,
       users
FROM linkrunner.daily_users_by_attribution
ORDER BY day, attribution_type, ad_network NULLS LAST;
