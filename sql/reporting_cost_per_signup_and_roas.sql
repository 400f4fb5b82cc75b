-- Cost per signup and ROAS per campaign and day (user acquisition), from the Reporting API's
-- spend, revenue and sign-ups, newest days first; days are the project's local days, money is
-- in `currency`. settled = false: the day's numbers may still move.
SELECT day,
       campaign_display_id,
       campaign_name,
       currency,
       spend,
       revenue,
       signups,
       cost_per_signup,
       roas,
       settled
FROM linkrunner.reporting_campaign_days
WHERE view = 'user_acquisition'
ORDER BY day DESC, spend DESC NULLS LAST, campaign_display_id;
