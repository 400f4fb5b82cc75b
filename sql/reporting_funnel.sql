-- The funnel click -> install -> signup per campaign and day (user acquisition), with the share
-- of each step that reached the next; newest days first, campaigns with no clicks left out.
SELECT day,
       campaign_display_id,
       campaign_name,
       clicks,
       installs,
       signups,
       click_to_install,
       install_to_signup,
       click_to_signup
FROM linkrunner.reporting_campaign_days
WHERE view = 'user_acquisition' AND clicks > 0
ORDER BY day DESC, clicks DESC, campaign_display_id;
