-- How long do users of each campaign take from store click to install to signup?
-- Median and 90th percentile per campaign, with how many signups each was measured on.
SELECT t.campaign_display_id,
       c.name AS campaign_name,
       t.signups,
       t.click_to_install_count,
       t.click_to_install_p50,
       t.click_to_install_p90,
       t.install_to_signup_count,
       t.install_to_signup_p50,
       t.install_to_signup_p90,
       t.click_to_signup_count,
       t.click_to_signup_p50,
       t.click_to_signup_p90
FROM linkrunner.time_to_signup_by_campaign t
LEFT JOIN linkrunner.campaigns c ON c.display_id = t.campaign_display_id
ORDER BY t.signups DESC, t.campaign_display_id;
