-- The reporting sign-up check for a span of days, reading only those days' rows however long
-- the history. The views are the same functions over every day, so both read alike.

-- The attributed_at index also holds the campaign and the channel, so a span's signups are
-- counted per campaign (here and in daily_signups_in) from the index alone, in whatever order
-- the table holds the rows (a backfill stores them campaign by campaign, so a month's rows lie
-- all over it). Without it the planner scans the whole primary key for the campaigns.
CREATE INDEX attributed_users_by_time ON linkrunner.attributed_users
    (attributed_at) INCLUDE (campaign_display_id, ad_channel);
DROP INDEX linkrunner.attributed_users_attributed_at;

-- Signup rows stored per campaign and local day of each zone a day was read in, for the days
-- first_day to last_day (inclusive); see reporting_stored_signups.
CREATE FUNCTION linkrunner.reporting_stored_signups_in(first_day date, last_day date)
RETURNS TABLE (day date, project_timezone text, campaign_display_id text, stored_signups bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH days AS (
        SELECT DISTINCT day, project_timezone
        FROM linkrunner.reporting_days
        WHERE view = 'user_acquisition' AND read_at IS NOT NULL
          AND day BETWEEN first_day AND last_day
    ),
    rows AS (
        SELECT campaign_display_id, attributed_at FROM linkrunner.attributed_users
        UNION ALL
        SELECT campaign_display_id, attributed_at FROM linkrunner.forgotten_rows
    )
    SELECT d.day, d.project_timezone, r.campaign_display_id, count(*)
    FROM days d
    JOIN rows r
      ON r.attributed_at >= (d.day::timestamp AT TIME ZONE d.project_timezone)
     AND r.attributed_at < ((d.day + 1)::timestamp AT TIME ZONE d.project_timezone)
     -- Every zone's local days lie within these UTC bounds: one range the planner can see,
     -- where the days' own bounds are known only row by row.
     AND r.attributed_at >= ((first_day - 1)::timestamp AT TIME ZONE 'UTC')
     AND r.attributed_at < ((last_day + 2)::timestamp AT TIME ZONE 'UTC')
    GROUP BY 1, 2, 3
$$;

CREATE OR REPLACE VIEW linkrunner.reporting_stored_signups AS
SELECT * FROM linkrunner.reporting_stored_signups_in('-infinity', 'infinity');

-- reporting_signup_check for the days first_day to last_day (inclusive).
CREATE FUNCTION linkrunner.reporting_signup_check_in(first_day date, last_day date)
RETURNS TABLE (day date, campaign_display_id text, project_timezone text, api_signups numeric,
               stored_signups bigint, difference numeric, settled boolean, covered boolean,
               verdict text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH api AS (
        SELECT r.day, r.display_id, r.project_timezone, r.signups
        FROM linkrunner.reporting_daily r
        WHERE r.view = 'user_acquisition' AND r.day BETWEEN first_day AND last_day
    ),
    pairs AS (
        SELECT COALESCE(api.day, s.day)                            AS day,
               COALESCE(api.display_id, s.campaign_display_id)    AS campaign_display_id,
               COALESCE(api.project_timezone, s.project_timezone) AS project_timezone,
               api.display_id IS NOT NULL                         AS in_api,
               api.signups                                        AS api_signups,
               COALESCE(s.stored_signups, 0)                      AS stored_signups
        FROM api
        FULL JOIN linkrunner.reporting_stored_signups_in(first_day, last_day) s
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
    LEFT JOIN linkrunner.reporting_days d ON d.day = p.day AND d.view = 'user_acquisition'
$$;

CREATE OR REPLACE VIEW linkrunner.reporting_signup_check AS
SELECT * FROM linkrunner.reporting_signup_check_in('-infinity', 'infinity');

COMMENT ON FUNCTION linkrunner.reporting_signup_check_in(date, date) IS
    'The reporting sign-up check (reporting_signup_check) for the days first_day to last_day.';
COMMENT ON FUNCTION linkrunner.reporting_stored_signups_in(date, date) IS
    'Stored signups per campaign and local day read from the Reporting API, for the days first_day to last_day.';
