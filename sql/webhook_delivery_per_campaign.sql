-- What share of each campaign's pulled signups arrived as a signup webhook, per local day in
-- Kolkata, since the receiver began? without_event counts the deliveries lost; put another
-- IANA zone in the literal (e.g. 'Europe/Berlin').
SELECT d.day,
       d.campaign_display_id,
       c.name AS campaign_name,
       d.signups,
       d.with_event,
       d.without_event,
       d.delivery_ratio
FROM linkrunner.daily_webhook_delivery_in('Asia/Kolkata') d
LEFT JOIN linkrunner.campaigns c ON c.display_id = d.campaign_display_id
ORDER BY d.day, d.campaign_display_id;
