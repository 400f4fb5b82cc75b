-- Which users were attributed more than once, and through which campaigns, in order?
SELECT user_id,
       attributions,
       campaigns,
       array_to_string(campaign_display_ids, ' -> ') AS campaign_path,
       first_attributed_at,
       last_attributed_at,
       last_attributed_at - first_attributed_at AS came_back_after
FROM linkrunner.reattributed_users
ORDER BY attributions DESC, user_id;
