-- What GET /get-attribution-result answered for each id the job looked up (sync
-- --attribution-details): one row per id, updated in place when asked again.
-- found: true for an answer, false for a 204 (Linkrunner knows nothing of the id), NULL when the
-- last answer could not be used (error says why; raw_text holds the body as received).
-- attributions_seen: the id's rows in attributed_users when it was last looked up; a new row
-- attributed less than a day before that look-up, or after it (a reattribution), makes it due
-- again. misses: answers in a row that were not an attribution
-- (204 or unusable); each waits longer before the id is asked again, and after five it is left
-- alone until a new attribution row for it appears.
CREATE TABLE linkrunner.attribution_results (
    lookup_kind       text NOT NULL CHECK (lookup_kind IN ('user_id', 'device_identifier')),
    lookup_value      text NOT NULL,
    found             boolean,
    campaign_name     text,
    display_id        text,
    deeplink          text,
    domain_name       text,
    ad_set_id         text,
    ad_set_name       text,
    ad_creative_id    text,
    ad_creative_name  text,
    keyword_id        text,
    keyword_name      text,
    ad_network        text,
    attribution_type  text,
    raw               jsonb,
    raw_text          text,
    error             text,
    attributions_seen bigint NOT NULL DEFAULT 0,
    misses            integer NOT NULL DEFAULT 0,
    first_checked_at  timestamptz NOT NULL DEFAULT now(),
    checked_at        timestamptz NOT NULL DEFAULT now(),
    -- When the answer last differed from the one before it.
    changed_at        timestamptz NOT NULL DEFAULT now(),
    last_run_id       uuid NOT NULL,
    PRIMARY KEY (lookup_kind, lookup_value)
);

ALTER TABLE linkrunner.sync_runs
    ADD COLUMN lookups           bigint NOT NULL DEFAULT 0,
    ADD COLUMN lookups_found     bigint NOT NULL DEFAULT 0,
    ADD COLUMN lookups_not_found bigint NOT NULL DEFAULT 0,
    ADD COLUMN lookups_failed    bigint NOT NULL DEFAULT 0;

-- Each attributed-user row with what the look-up of its user (or, without a user id, of its
-- device's GAID/IDFA) answered: the attribution Linkrunner holds now, which after a
-- reattribution may name another campaign than the row's. NULL details: not looked up yet.
CREATE VIEW linkrunner.attributed_users_with_details AS
SELECT a.campaign_display_id,
       a.attributed_at,
       a.row_key,
       a.user_id,
       a.ad_channel,
       r.lookup_kind,
       r.lookup_value,
       r.found              AS details_found,
       r.attribution_type,
       r.ad_network,
       r.display_id         AS attributed_display_id,
       r.campaign_name      AS attributed_campaign_name,
       r.ad_set_id          AS attributed_ad_set_id,
       r.ad_set_name        AS attributed_ad_set_name,
       r.ad_creative_id     AS attributed_ad_creative_id,
       r.ad_creative_name   AS attributed_ad_creative_name,
       r.keyword_id,
       r.keyword_name,
       r.checked_at         AS details_checked_at
FROM linkrunner.attributed_users a
LEFT JOIN LATERAL (
    SELECT *
    FROM linkrunner.attribution_results r
    WHERE (a.user_id <> '' AND r.lookup_kind = 'user_id' AND r.lookup_value = a.user_id)
       OR (coalesce(a.user_id, '') = '' AND r.lookup_kind = 'device_identifier'
           AND r.lookup_value IN (a.user_data -> 'device_data' ->> 'gaid',
                                  a.user_data -> 'device_data' ->> 'idfa'))
    ORDER BY r.found DESC NULLS LAST, r.checked_at DESC
    LIMIT 1
) r ON true;

-- Users (ids looked up, with an answer) per local day of the IANA zone tz, by attribution type
-- (ORGANIC, INORGANIC) and ad network. A user's day is that of its first attribution row;
-- an id with none (from --lookup-from) counts on the day it was first looked up.
CREATE FUNCTION linkrunner.daily_users_by_attribution_in(tz text)
RETURNS TABLE (day date, attribution_type text, ad_network text, users bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH first_seen AS (
        SELECT 'user_id' AS kind, user_id AS value, min(attributed_at) AS at
        FROM linkrunner.attributed_users WHERE user_id <> '' GROUP BY user_id
        UNION ALL
        SELECT 'device_identifier', d.value, min(a.attributed_at)
        FROM linkrunner.attributed_users a
        CROSS JOIN LATERAL (VALUES (a.user_data -> 'device_data' ->> 'gaid'),
                                   (a.user_data -> 'device_data' ->> 'idfa')) AS d(value)
        WHERE coalesce(a.user_id, '') = '' AND d.value <> ''
        GROUP BY d.value
    )
    SELECT (coalesce(f.at, r.first_checked_at) AT TIME ZONE tz)::date,
           r.attribution_type, r.ad_network, count(*)
    FROM linkrunner.attribution_results r
    LEFT JOIN first_seen f ON f.kind = r.lookup_kind AND f.value = r.lookup_value
    WHERE r.found
    GROUP BY 1, 2, 3
$$;

-- One row per UTC day, attribution type and ad network with at least one user.
CREATE VIEW linkrunner.daily_users_by_attribution AS
SELECT day, attribution_type, ad_network, users
FROM linkrunner.daily_users_by_attribution_in('UTC');
