-- Which signup events does the pull contradict? Events whose instant the pull has covered with
-- no such user stored (missing), or whose stored user differs in campaign or attributed instant
-- (mismatch); next_run_reads says whether the next run reads that instant again.
SELECT campaign_id,
       user_id,
       attributed_on,
       status,
       differs_in,
       matched_campaign_display_id,
       matched_attributed_at,
       time_difference,
       next_run_reads,
       first_received_at
FROM linkrunner.webhook_signups_matched
WHERE status IN ('missing', 'mismatch')
ORDER BY attributed_on, campaign_id, user_id;
