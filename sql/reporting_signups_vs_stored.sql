-- Where the Reporting API's sign-ups and the signup rows stored do not agree, per campaign and
-- day: settled days first (those should agree once covered; see the verdict), then days still
-- moving.
SELECT day,
       campaign_display_id,
       api_signups,
       stored_signups,
       difference,
       settled,
       covered,
       verdict
FROM linkrunner.reporting_signup_check
WHERE verdict <> 'agree'
ORDER BY settled DESC, day, campaign_display_id;
