-- How do each campaign's signup webhooks compare with the pulled signups? Events per campaign
-- and status (matched, mismatch, pending, missing, incomplete), with their deliveries; see the
-- view webhook_signups_matched for what each status means.
SELECT campaign_id,
       status,
       count(*)             AS events,
       sum(deliveries)::int8 AS deliveries
FROM linkrunner.webhook_signups_matched
GROUP BY campaign_id, status
ORDER BY campaign_id, status;
