-- For each signup, which ad network, ad set, creative and keyword Linkrunner attributes its
-- user to now (needs sync --attribution-details; NULL until the user is looked up).
SELECT campaign_display_id,
       attributed_at,
       user_id,
       attribution_type,
       ad_network,
       attributed_display_id,
       attributed_ad_set_name,
       attributed_ad_creative_name,
       keyword_name
FROM linkrunner.attributed_users_with_details
ORDER BY attributed_at DESC, campaign_display_id, row_key;
