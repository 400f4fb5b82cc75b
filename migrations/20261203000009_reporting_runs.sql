-- sync --reporting: the shared pace, the ledger's word on reporting, and the analysts' views.

-- When the last request to the Reporting API went out. Its limit is per key, not per process:
-- a run waits from the last request of the run before it.
CREATE TABLE linkrunner.reporting_pace (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_request_at timestamptz NOT NULL
);

-- Why a run's reporting stopped short (a suspended billing account, requests that kept
-- failing); NULL when it did not, or when the run did not read the Reporting API.
ALTER TABLE linkrunner.sync_runs
    ADD COLUMN reporting_error    text,
    -- Values the Reporting API sent that are not numbers in the documented form (NULL in their
    -- column, named in `unparsed`, kept in `raw`).
    ADD COLUMN reporting_unparsed bigint NOT NULL DEFAULT 0;

-- The number of campaigns the list held when a day's pass under way read its first page. A
-- later page that finds another number starts the pass again from page 1: a campaign deleted
-- meanwhile moves every later one a place up, and one would go unread across the page edge.
ALTER TABLE linkrunner.reporting_days ADD COLUMN pass_total bigint;

-- Signup rows stored per campaign and local day of each zone a day was read in: the rows of
-- attributed_users, and the rows of people erased by `forget` (whom the API still counts).
-- Only days the Reporting API was read in full for are counted.
CREATE VIEW linkrunner.reporting_stored_signups AS
WITH days AS (
    SELECT DISTINCT day, project_timezone
    FROM linkrunner.reporting_days
    WHERE view = 'user_acquisition' AND read_at IS NOT NULL
),
rows AS (
    SELECT campaign_display_id, attributed_at FROM linkrunner.attributed_users
    UNION ALL
    SELECT campaign_display_id, attributed_at FROM linkrunner.forgotten_rows
)
SELECT d.day, d.project_timezone, r.campaign_display_id, count(*) AS stored_signups
FROM days d
JOIN rows r
  ON r.attributed_at >= (d.day::timestamp AT TIME ZONE d.project_timezone)
 AND r.attributed_at < ((d.day + 1)::timestamp AT TIME ZONE d.project_timezone)
GROUP BY 1, 2, 3;

-- One row per campaign, local day of the project's timezone and view, as the Reporting API
-- numbers it, with cost per signup, ROAS and the funnel click -> install -> signup worked out
-- here from the stored counts and money (NULL where a divisor is zero or a value was not
-- readable). known_campaign: the display_id is one of the campaigns table's, exactly as
-- received (no guess is made across case). settled: the day was read in full after it left
-- the reporting lookback, so its numbers no longer change.
CREATE VIEW linkrunner.reporting_campaign_days AS
SELECT r.day,
       r.display_id                                 AS campaign_display_id,
       r.view,
       r.project_timezone,
       COALESCE(NULLIF(c.name, ''), r.name)         AS campaign_name,
       c.display_id IS NOT NULL                     AS known_campaign,
       r.clicks,
       r.installs,
       r.signups,
       r.reinstalls,
       r.reengagements,
       r.spend,
       r.revenue,
       r.currency,
       round(r.spend / NULLIF(r.signups, 0), 4)     AS cost_per_signup,
       round(r.spend / NULLIF(r.installs, 0), 4)    AS cost_per_install,
       round(r.revenue / NULLIF(r.spend, 0), 4)     AS roas,
       round(r.installs / NULLIF(r.clicks, 0), 4)   AS click_to_install,
       round(r.signups / NULLIF(r.installs, 0), 4)  AS install_to_signup,
       round(r.signups / NULLIF(r.clicks, 0), 4)    AS click_to_signup,
       COALESCE(d.settled, false)                   AS settled,
       r.changed_at
FROM linkrunner.reporting_daily r
LEFT JOIN linkrunner.campaigns c ON c.display_id = r.display_id
LEFT JOIN linkrunner.reporting_days d ON d.day = r.day AND d.view = r.view;

-- The Reporting API's sign-ups beside the signup rows stored, per campaign and day read (user
-- acquisition view). They should agree on settled days the signup sync covers. verdict:
-- 'agree'; 'not settled' (the API's numbers may still move); 'not covered' (the campaign's
-- synced range, sync_checkpoints.covered_from to synced_until, does not hold the whole local
-- day yet, e.g. a --since later than the day's start in the zone the days are cut in);
-- 'differ' (a settled, covered day that does not agree: a row missing or extra); 'unknown
-- campaign' (a display_id the campaigns table does not hold); 'not in the API' (rows stored for
-- a campaign the API did not list that day, e.g. one deleted since); 'unparsed' (the API's value
-- was not a number).
CREATE VIEW linkrunner.reporting_signup_check AS
WITH api AS (
    SELECT r.day, r.display_id, r.project_timezone, r.signups
    FROM linkrunner.reporting_daily r
    WHERE r.view = 'user_acquisition'
),
pairs AS (
    SELECT COALESCE(api.day, s.day)                            AS day,
           COALESCE(api.display_id, s.campaign_display_id)    AS campaign_display_id,
           COALESCE(api.project_timezone, s.project_timezone) AS project_timezone,
           api.display_id IS NOT NULL                         AS in_api,
           api.signups                                        AS api_signups,
           COALESCE(s.stored_signups, 0)                      AS stored_signups
    FROM api
    FULL JOIN linkrunner.reporting_stored_signups s
      ON s.day = api.day AND s.campaign_display_id = api.display_id
     AND s.project_timezone = api.project_timezone
)
SELECT p.day,
       p.campaign_display_id,
       p.project_timezone,
       p.api_signups,
       p.stored_signups,
       p.stored_signups - p.api_signups AS difference,
       COALESCE(d.settled, false)       AS settled,
       COALESCE(k.covered_from <= GREATEST(p.day::timestamp AT TIME ZONE p.project_timezone,
                                           c.created_at)
                AND k.synced_until >= ((p.day + 1)::timestamp AT TIME ZONE p.project_timezone),
                false)                  AS covered,
       CASE
           WHEN NOT p.in_api THEN 'not in the API'
           WHEN c.display_id IS NULL THEN 'unknown campaign'
           WHEN p.api_signups IS NULL THEN 'unparsed'
           WHEN p.api_signups = p.stored_signups THEN 'agree'
           WHEN NOT COALESCE(d.settled, false) THEN 'not settled'
           WHEN NOT COALESCE(k.covered_from <= GREATEST(p.day::timestamp AT TIME ZONE p.project_timezone,
                                                        c.created_at)
                             AND k.synced_until >= ((p.day + 1)::timestamp AT TIME ZONE p.project_timezone),
                             false) THEN 'not covered'
           ELSE 'differ'
       END                              AS verdict
FROM pairs p
LEFT JOIN linkrunner.campaigns c ON c.display_id = p.campaign_display_id
LEFT JOIN linkrunner.sync_checkpoints k ON k.campaign_display_id = p.campaign_display_id
LEFT JOIN linkrunner.reporting_days d ON d.day = p.day AND d.view = 'user_acquisition';
