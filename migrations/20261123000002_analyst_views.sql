-- Views and a function for analysts. They store nothing: every query reads the tables as they
-- are now. Every view names a campaign `campaign_display_id`, so any two of them join on it.

-- One row per attribution, as in attributed_users, read the way analysts mean it: "" is NULL
-- (the API sends "" where it means null; the table keeps what was received, nothing lost), and
-- the device's platform is named.
--
-- platform: only one platform has each of these identifiers. 'IOS' when user_data.device_data
-- has a non-empty idfv or idfa; else 'ANDROID' when it has a non-empty android_id or gaid; else
-- NULL (no identifier was sent, e.g. a device without tracking consent or an SDK that sends
-- none). Brand, model and OS strings are not used: they are free text and not always there.
CREATE VIEW linkrunner.attributed_users_clean AS
SELECT a.campaign_display_id,
       a.attributed_at,
       a.row_key,
       a.user_id,
       NULLIF(a.ad_channel, '')         AS ad_channel,
       NULLIF(a.campaign_name, '')      AS campaign_name,
       NULLIF(a.link, '')               AS link,
       a.store_click_at,
       a.installed_at,
       NULLIF(a.meta_ad_id, '')         AS meta_ad_id,
       NULLIF(a.ad_creative_id, '')     AS ad_creative_id,
       NULLIF(a.ad_creative_name, '')   AS ad_creative_name,
       NULLIF(a.ad_set_id, '')          AS ad_set_id,
       NULLIF(a.ad_set_name, '')        AS ad_set_name,
       NULLIF(a.publisher_platform, '') AS publisher_platform,
       NULLIF(a.platform_position, '')  AS platform_position,
       NULLIF(a.user_name, '')          AS user_name,
       NULLIF(a.user_email, '')         AS user_email,
       NULLIF(a.user_phone, '')         AS user_phone,
       CASE
           WHEN NULLIF(a.user_data #>> '{device_data,idfv}', '') IS NOT NULL
             OR NULLIF(a.user_data #>> '{device_data,idfa}', '') IS NOT NULL THEN 'IOS'
           WHEN NULLIF(a.user_data #>> '{device_data,android_id}', '') IS NOT NULL
             OR NULLIF(a.user_data #>> '{device_data,gaid}', '') IS NOT NULL THEN 'ANDROID'
       END                              AS platform,
       a.user_data -> 'device_data'     AS device_data,
       a.user_data,
       a.first_synced_at,
       a.last_synced_at
FROM linkrunner.attributed_users a;

-- Signups per local day of the IANA zone tz, per campaign and ad channel (NULL: no channel).
-- AT TIME ZONE applies the zone's DST rules, so a local day is 23 or 25 hours long where the
-- clocks change. An unknown zone fails the query (once there is a row to convert), never
-- falls back to UTC. Plain SQL, STABLE and not STRICT, so the planner inlines it and filters on
-- its columns reach the table's indexes.
CREATE FUNCTION linkrunner.daily_signups_in(tz text)
RETURNS TABLE (day date, campaign_display_id text, ad_channel text, signups bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (a.attributed_at AT TIME ZONE tz)::date, a.campaign_display_id, a.ad_channel, count(*)
    FROM linkrunner.attributed_users_clean a
    GROUP BY 1, 2, 3
$$;

COMMENT ON FUNCTION linkrunner.daily_signups_in(text) IS
    'Signups per local day of an IANA zone, per campaign and ad channel.';

-- One row per UTC day, campaign and ad channel with at least one signup.
CREATE VIEW linkrunner.daily_signups AS
SELECT day, campaign_display_id, ad_channel, signups
FROM linkrunner.daily_signups_in('UTC');

-- One row per user id attributed more than once, to one campaign or several. Rows without a
-- user id cannot be told to be the same person, so they are left out. The arrays list the
-- user's attributions in order (ties on time ordered by campaign), repeats kept.
CREATE VIEW linkrunner.reattributed_users AS
SELECT user_id,
       count(*)                            AS attributions,
       count(DISTINCT campaign_display_id) AS campaigns,
       min(attributed_at)                  AS first_attributed_at,
       max(attributed_at)                  AS last_attributed_at,
       array_agg(campaign_display_id ORDER BY attributed_at, campaign_display_id)
                                           AS campaign_display_ids,
       array_agg(attributed_at ORDER BY attributed_at, campaign_display_id)
                                           AS attribution_times,
       array_agg(ad_channel ORDER BY attributed_at, campaign_display_id)
                                           AS ad_channels
FROM linkrunner.attributed_users_clean
WHERE user_id IS NOT NULL
GROUP BY user_id
HAVING count(*) > 1;

-- One row per campaign ever listed, deleted ones included (their rows stay), with or without
-- signups. users counts distinct user ids (rows without one are in signups only).
-- reattributed_users: users of this campaign attributed more than once anywhere (as in the
-- reattributed_users view); reattributions: this campaign's signups by a user already attributed
-- before, to any campaign. listed_attributed_users is Linkrunner's own counter, which can lag.
CREATE VIEW linkrunner.campaign_performance AS
WITH listings AS (
    SELECT cs.display_id,
           array_agg(cs.store_listing_id ORDER BY cs.store_listing_id) AS ids,
           array_agg(s.platform ORDER BY cs.store_listing_id)          AS platforms
    FROM linkrunner.campaign_store_listings cs
    JOIN linkrunner.store_listings s USING (store_listing_id)
    GROUP BY cs.display_id
),
signups AS (
    SELECT campaign_display_id,
           count(*)                AS signups,
           count(DISTINCT user_id) AS users,
           min(attributed_at)      AS first_signup_at,
           max(attributed_at)      AS last_signup_at
    FROM linkrunner.attributed_users
    GROUP BY campaign_display_id
),
-- Each attribution's place in its user's history, over all campaigns.
history AS (
    SELECT campaign_display_id, user_id,
           count(*) OVER (PARTITION BY user_id) AS of_user,
           row_number() OVER (PARTITION BY user_id ORDER BY attributed_at, campaign_display_id)
               AS nth
    FROM linkrunner.attributed_users
    WHERE user_id IS NOT NULL
),
repeats AS (
    SELECT campaign_display_id,
           count(DISTINCT user_id)         AS reattributed_users,
           count(*) FILTER (WHERE nth > 1) AS reattributions
    FROM history
    WHERE of_user > 1
    GROUP BY campaign_display_id
)
SELECT c.display_id                          AS campaign_display_id,
       c.name                                AS campaign_name,
       c.active,
       c.deleted_at IS NOT NULL              AS deleted,
       c.deleted_at,
       c.google,
       c.meta,
       c.created_at,
       COALESCE(l.ids, '{}')                 AS store_listing_ids,
       COALESCE(l.platforms, '{}')           AS store_listing_platforms,
       COALESCE(s.signups, 0)                AS signups,
       COALESCE(s.users, 0)                  AS users,
       s.first_signup_at,
       s.last_signup_at,
       COALESCE(r.reattributed_users, 0)     AS reattributed_users,
       COALESCE(r.reattributions, 0)         AS reattributions,
       c.attributed_users                    AS listed_attributed_users
FROM linkrunner.campaigns c
LEFT JOIN listings l ON l.display_id = c.display_id
LEFT JOIN signups s ON s.campaign_display_id = c.display_id
LEFT JOIN repeats r ON r.campaign_display_id = c.display_id;

-- One row per attribution with the time from store click to install to signup (attributed_at).
-- NULL where a time is missing. Intervals are as Linkrunner's times give them: a negative one
-- means those times disagree, and is kept rather than hidden.
CREATE VIEW linkrunner.time_to_signup AS
SELECT campaign_display_id,
       attributed_at,
       row_key,
       user_id,
       ad_channel,
       platform,
       store_click_at,
       installed_at,
       installed_at - store_click_at  AS click_to_install,
       attributed_at - installed_at   AS install_to_signup,
       attributed_at - store_click_at AS click_to_signup
FROM linkrunner.attributed_users_clean;

-- One row per campaign with signups: how many attributions each interval could be measured on,
-- and its median and 90th percentile (continuous, over those attributions only).
CREATE VIEW linkrunner.time_to_signup_by_campaign AS
SELECT campaign_display_id,
       count(*)                                                          AS signups,
       count(click_to_install)                                           AS click_to_install_count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY click_to_install)     AS click_to_install_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY click_to_install)     AS click_to_install_p90,
       count(install_to_signup)                                          AS install_to_signup_count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY install_to_signup)    AS install_to_signup_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY install_to_signup)    AS install_to_signup_p90,
       count(click_to_signup)                                            AS click_to_signup_count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY click_to_signup)      AS click_to_signup_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY click_to_signup)      AS click_to_signup_p90
FROM linkrunner.time_to_signup
GROUP BY campaign_display_id;

-- One row per campaign ever listed: how far its data reaches and how old it is.
-- synced_until: everything attributed before it has been read (the checkpoint); NULL: never
-- synced. behind = now() - synced_until; a campaign skipped because its counter did not move
-- falls behind by up to --full-scan-every, and a deleted one for good. rows_changed_at: when a
-- run last inserted or changed one of its rows. The last_success_* columns are the same on
-- every row: the latest run whose outcome was 'success'.
CREATE VIEW linkrunner.data_freshness AS
WITH last_success AS (
    SELECT run_id, started_at, finished_at
    FROM linkrunner.sync_runs
    WHERE outcome = 'success'
    ORDER BY finished_at DESC NULLS LAST
    LIMIT 1
),
stored AS (
    SELECT campaign_display_id,
           max(attributed_at)  AS last_signup_at,
           max(last_synced_at) AS rows_changed_at
    FROM linkrunner.attributed_users
    GROUP BY campaign_display_id
)
SELECT c.display_id              AS campaign_display_id,
       c.name                    AS campaign_name,
       c.active,
       c.deleted_at IS NOT NULL  AS deleted,
       k.covered_from,
       k.synced_until,
       now() - k.synced_until    AS behind,
       k.updated_at              AS checkpoint_updated_at,
       k.last_run_id             AS checkpoint_run_id,
       s.last_signup_at,
       s.rows_changed_at,
       c.changed_at              AS listing_changed_at,
       c.last_seen_at            AS last_listed_at,
       r.run_id                  AS last_success_run_id,
       r.started_at              AS last_success_started_at,
       r.finished_at             AS last_success_finished_at
FROM linkrunner.campaigns c
LEFT JOIN linkrunner.sync_checkpoints k ON k.campaign_display_id = c.display_id
LEFT JOIN stored s ON s.campaign_display_id = c.display_id
LEFT JOIN last_success r ON true;
