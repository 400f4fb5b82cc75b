-- How does each campaign perform, and which store listings does it point at?
-- Deleted campaigns are included (their signups stay); deleted says which they are.
SELECT campaign_display_id,
       campaign_name,
       active,
       deleted,
       google,
       meta,
       store_listing_ids,
       store_listing_platforms,
       signups,
       users,
       first_signup_at,
       last_signup_at,
       reattributed_users,
       reattributions
FROM linkrunner.campaign_performance
ORDER BY signups DESC, campaign_display_id;
