-- Reconciling the push with the pull, so a lost delivery shows: each signup event beside the
-- attributed user it stands for, the pulled signups whose event never came, and the install
-- events beside the Reporting API's installs. Views and functions only. They read stored
-- columns and keys (never name, email, phone, additional_data or the body), so what `forget`
-- erased is gone from them too, and in the `hash` and `drop` modes they show nothing the
-- tables do not already hold that way.
--
-- When the receiver began: the earliest attributed_on of any stored event (Linkrunner sends
-- an event when it attributes, and gives up within seconds, so no stored event is much older
-- than the receiver). Signups and installs before it are not counted against the webhooks.

-- One row per stored signup event, with the attributed user it matches and a status.
--
-- The match is by campaign display_id and user id. A user attributed several times has
-- several rows; each event (keyed by its attribution instant too) takes the row of the same
-- campaign, user and instant. Failing that, a row of the same user that no signup event names
-- exactly: first one at the same instant in another campaign, then the nearest in time of the
-- same campaign.
--
-- status, in this order:
--   'incomplete' the event has no user id, campaign id or readable attributed_on;
--   'matched'    a row of the same campaign, user and attributed instant;
--   'mismatch'   a row of the same user at the same instant in another campaign (differs_in
--                'campaign'; told whatever the checkpoint says, as an unknown campaign id is
--                how a campaign_id that is not the display_id would show);
--   'pending'    the pull has not covered the instant: the campaign has no checkpoint (never
--                read, or not known to the warehouse yet) or the instant lies outside
--                [covered_from, synced_until);
--   'mismatch'   the instant is covered and a row of the same campaign and user differs in its
--                attributed instant (differs_in 'attributed_at'; the nearest one is shown);
--   'missing'    the instant is covered and no such user is stored: a finding.
-- next_run_reads: the campaign's next run reads the instant (again), as it lies no earlier
-- than its synced_until less the lookback of the latest run; a 'missing' event with it may
-- still turn 'matched' when the API serves the row late. NULL without a checkpoint or a
-- recorded lookback.
CREATE VIEW linkrunner.webhook_signups_matched AS
WITH lookback AS (
    SELECT make_interval(secs => (r.settings ->> 'lookback_seconds')::double precision) AS span
    FROM linkrunner.sync_runs r
    ORDER BY r.started_at DESC
    LIMIT 1
),
judged AS (
    SELECT e.event_key,
           e.campaign_id,
           e.user_id,
           e.attributed_on,
           e.first_received_at,
           e.deliveries,
           m.campaign_display_id,
           m.attributed_at,
           m.row_key,
           m.kind,
           k.synced_until,
           COALESCE(k.covered_from <= e.attributed_on AND e.attributed_on < k.synced_until,
                    false) AS covered,
           e.attributed_on >= k.synced_until - (SELECT span FROM lookback) AS next_run_reads
    FROM linkrunner.webhook_events e
    LEFT JOIN linkrunner.sync_checkpoints k ON k.campaign_display_id = e.campaign_id
    LEFT JOIN LATERAL (
        SELECT a.campaign_display_id, a.attributed_at, a.row_key,
               CASE WHEN a.campaign_display_id = e.campaign_id
                         AND a.attributed_at = e.attributed_on THEN 'exact'
                    WHEN a.attributed_at = e.attributed_on THEN 'campaign'
                    ELSE 'attributed_at' END AS kind
        FROM linkrunner.attributed_users a
        WHERE a.user_id = e.user_id
          AND (a.campaign_display_id = e.campaign_id OR a.attributed_at = e.attributed_on)
          AND ((a.campaign_display_id = e.campaign_id AND a.attributed_at = e.attributed_on)
               OR NOT EXISTS (
                   SELECT FROM linkrunner.webhook_events o
                   WHERE o.event_type = 'signup' AND o.campaign_id = a.campaign_display_id
                     AND o.attributed_on = a.attributed_at AND o.user_id = a.user_id))
        ORDER BY a.attributed_at = e.attributed_on AND a.campaign_display_id = e.campaign_id DESC,
                 a.attributed_at = e.attributed_on DESC,
                 abs(extract(epoch FROM a.attributed_at - e.attributed_on)),
                 a.attributed_at, a.campaign_display_id, a.row_key
        LIMIT 1
    ) m ON e.user_id IS NOT NULL AND e.campaign_id IS NOT NULL AND e.attributed_on IS NOT NULL
    WHERE e.event_type = 'signup'
),
rated AS (
    SELECT j.*,
           CASE
               WHEN j.user_id IS NULL OR j.campaign_id IS NULL OR j.attributed_on IS NULL
                   THEN 'incomplete'
               WHEN j.kind = 'exact' THEN 'matched'
               WHEN j.kind = 'campaign' THEN 'mismatch'
               WHEN NOT j.covered THEN 'pending'
               WHEN j.kind = 'attributed_at' THEN 'mismatch'
               ELSE 'missing'
           END AS status
    FROM judged j
)
SELECT r.event_key,
       r.campaign_id,
       r.user_id,
       r.attributed_on,
       r.first_received_at,
       r.deliveries,
       r.status,
       CASE WHEN r.status = 'mismatch' THEN r.kind END                AS differs_in,
       CASE WHEN r.status IN ('matched', 'mismatch') THEN r.campaign_display_id END
                                                                      AS matched_campaign_display_id,
       CASE WHEN r.status IN ('matched', 'mismatch') THEN r.attributed_at END
                                                                      AS matched_attributed_at,
       CASE WHEN r.status IN ('matched', 'mismatch') THEN r.row_key END
                                                                      AS matched_row_key,
       CASE WHEN r.status IN ('matched', 'mismatch') THEN r.attributed_at - r.attributed_on END
                                                                      AS time_difference,
       r.covered,
       r.synced_until,
       r.next_run_reads
FROM rated r;

COMMENT ON VIEW linkrunner.webhook_signups_matched IS
    'One row per stored signup event with the attributed user it matches by campaign display_id, '
    'user id and attributed instant. status: matched; mismatch (a stored row of the user differs '
    'in campaign at the same instant, or in instant within the same campaign: differs_in); '
    'pending (the pull has not covered the instant: no checkpoint, or outside covered_from to '
    'synced_until); missing (covered, and no such user stored: a finding); incomplete (no user '
    'id, campaign id or readable attributed_on). next_run_reads: the next run reads the instant '
    'again (within the latest run''s lookback before synced_until).';

-- Per campaign and local day of the IANA zone tz, the pulled signups and how many of them a
-- signup event arrived for: the share delivered. Only rows with a user id count (signup
-- events are matched by it), and only those attributed since the receiver began (the
-- earliest attributed_on of any stored event), so the day the receiver started counts from
-- then and earlier days not at all. with_event: rows a signup event matches, exactly or as its
-- mismatch (the delivery came, its fields disagree; see webhook_signups_matched).
CREATE FUNCTION linkrunner.daily_webhook_delivery_in(tz text)
RETURNS TABLE (day date, campaign_display_id text, signups bigint, with_event bigint,
               without_event bigint, delivery_ratio numeric)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH since AS (
        SELECT min(attributed_on) AS at FROM linkrunner.webhook_events
    ),
    delivered AS (
        SELECT DISTINCT matched_campaign_display_id, matched_attributed_at, matched_row_key
        FROM linkrunner.webhook_signups_matched
        WHERE status IN ('matched', 'mismatch')
    ),
    pulled AS (
        SELECT (a.attributed_at AT TIME ZONE tz)::date AS day,
               a.campaign_display_id,
               d.matched_row_key IS NOT NULL AS with_event
        FROM linkrunner.attributed_users a
        JOIN since s ON a.attributed_at >= s.at
        LEFT JOIN delivered d
          ON d.matched_campaign_display_id = a.campaign_display_id
         AND d.matched_attributed_at = a.attributed_at
         AND d.matched_row_key = a.row_key
        WHERE a.user_id <> ''
    )
    SELECT day,
           campaign_display_id,
           count(*),
           count(*) FILTER (WHERE with_event),
           count(*) FILTER (WHERE NOT with_event),
           round((count(*) FILTER (WHERE with_event))::numeric / count(*), 4)
    FROM pulled
    GROUP BY day, campaign_display_id
$$;

COMMENT ON FUNCTION linkrunner.daily_webhook_delivery_in(text) IS
    'Per campaign and local day of an IANA zone: signups pulled (with a user id, attributed '
    'since the earliest attributed_on of any stored webhook event, when the receiver began), '
    'of them with a signup event (matched or mismatch), without one (deliveries lost), and '
    'delivery_ratio = with_event / signups.';

-- Per campaign (the event's campaign_id; NULL for an organic install without one) and local
-- day of the IANA zone tz of its attributed_on: the install events stored, and of them those
-- converted, i.e. the same device (gaid or idfa equal) has a signup event attributed at or
-- after the install, in any campaign. A device installed again after its signup converts
-- again only with a later signup.
--
-- Beside them, the Reporting API's installs of that campaign and day (user acquisition view,
-- days read in full), from the receiver's first day on. The Reporting API's days are local
-- days of the project's timezone (reporting_daily.project_timezone); they line up with these
-- days only when tz is that zone, spelled as recorded there (case aside), so for any other
-- zone the reporting columns are NULL. events_per_reported_install can pass 1 (reinstalls,
-- installs the report counts under other rules). whole_day: the receiver was running from
-- the day's start (false on its first day, whose installs before it started are not events).
CREATE FUNCTION linkrunner.daily_webhook_installs_in(tz text)
RETURNS TABLE (day date, campaign_display_id text, install_events bigint, converted bigint,
               install_to_signup numeric, reporting_installs numeric,
               events_per_reported_install numeric, reporting_settled boolean,
               whole_day boolean)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH since AS (
        SELECT min(attributed_on) AS at FROM linkrunner.webhook_events
    ),
    signed AS (
        SELECT 'gaid' AS kind, gaid AS device, max(attributed_on) AS last_at
        FROM linkrunner.webhook_events
        WHERE event_type = 'signup' AND gaid IS NOT NULL
        GROUP BY gaid
        UNION ALL
        SELECT 'idfa', idfa, max(attributed_on)
        FROM linkrunner.webhook_events
        WHERE event_type = 'signup' AND idfa IS NOT NULL
        GROUP BY idfa
    ),
    installs AS (
        SELECT (i.attributed_on AT TIME ZONE tz)::date AS day,
               i.campaign_id,
               COALESCE(g.last_at >= i.attributed_on, false)
                   OR COALESCE(f.last_at >= i.attributed_on, false) AS converted
        FROM linkrunner.webhook_events i
        LEFT JOIN signed g ON g.kind = 'gaid' AND g.device = i.gaid
        LEFT JOIN signed f ON f.kind = 'idfa' AND f.device = i.idfa
        WHERE i.event_type = 'install' AND i.attributed_on IS NOT NULL
    ),
    events AS (
        SELECT day, campaign_id, count(*) AS n, count(*) FILTER (WHERE converted) AS converted
        FROM installs
        GROUP BY day, campaign_id
    ),
    reported AS (
        SELECT r.day, r.display_id, r.installs, d.settled
        FROM linkrunner.reporting_daily r
        JOIN linkrunner.reporting_days d
          ON d.day = r.day AND d.view = r.view AND d.read_at IS NOT NULL
        CROSS JOIN since s
        WHERE r.view = 'user_acquisition'
          AND lower(r.project_timezone) = lower(tz)
          AND r.day >= (s.at AT TIME ZONE tz)::date
    )
    SELECT COALESCE(e.day, r.day),
           COALESCE(e.campaign_id, r.display_id),
           COALESCE(e.n, 0),
           COALESCE(e.converted, 0),
           round(e.converted::numeric / e.n, 4),
           r.installs,
           round(COALESCE(e.n, 0) / NULLIF(r.installs, 0), 4),
           r.settled,
           (COALESCE(e.day, r.day)::timestamp AT TIME ZONE tz) >= s.at
    FROM events e
    FULL JOIN reported r ON r.day = e.day AND r.display_id = e.campaign_id
    CROSS JOIN since s
$$;

COMMENT ON FUNCTION linkrunner.daily_webhook_installs_in(text) IS
    'Per campaign and local day of an IANA zone: install events, those converted (a signup '
    'event of the same gaid or idfa attributed at or after the install), install_to_signup, '
    'and beside them the Reporting API''s installs (user acquisition, days read in full, from '
    'the receiver''s first day), filled only when the zone is the project timezone the '
    'reporting days were read in. whole_day: the receiver ran from the day''s start.';
