-- A run, `status` and `forget` cost what changed, not what is stored: what they need of
-- attributed_users is found through indexes, or through counts kept beside it.

-- Rows stored per campaign, kept by attributed_users' own triggers. Each statement that adds or
-- removes rows appends one delta per campaign and updates none, so concurrent writers never
-- wait on each other here; compact_row_counts() folds the deltas, once a run. changed_at: the
-- latest last_synced_at a statement wrote (a delete writes none).
CREATE TABLE linkrunner.campaign_row_counts (
    campaign_display_id text NOT NULL,
    rows                bigint NOT NULL,
    changed_at          timestamptz
);
CREATE INDEX campaign_row_counts_campaign
    ON linkrunner.campaign_row_counts (campaign_display_id);

COMMENT ON TABLE linkrunner.campaign_row_counts IS
    'Rows of attributed_users per campaign, as deltas: sum(rows) is the count, max(changed_at) the last change.';

CREATE FUNCTION linkrunner.count_written_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO linkrunner.campaign_row_counts (campaign_display_id, rows, changed_at)
    SELECT campaign_display_id,
           CASE WHEN TG_OP = 'INSERT' THEN count(*) ELSE 0 END,
           max(last_synced_at)
    FROM written GROUP BY campaign_display_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION linkrunner.count_deleted_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO linkrunner.campaign_row_counts (campaign_display_id, rows)
    SELECT campaign_display_id, -count(*) FROM deleted GROUP BY campaign_display_id;
    RETURN NULL;
END
$$;

-- Taking the table's lock first, so no write falls between the triggers and the count below.
CREATE TRIGGER attributed_users_count_inserted AFTER INSERT ON linkrunner.attributed_users
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION linkrunner.count_written_rows();
CREATE TRIGGER attributed_users_count_updated AFTER UPDATE ON linkrunner.attributed_users
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION linkrunner.count_written_rows();
CREATE TRIGGER attributed_users_count_deleted AFTER DELETE ON linkrunner.attributed_users
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION linkrunner.count_deleted_rows();

INSERT INTO linkrunner.campaign_row_counts (campaign_display_id, rows, changed_at)
SELECT campaign_display_id, count(*), max(last_synced_at)
FROM linkrunner.attributed_users GROUP BY campaign_display_id;

-- One row per campaign again. Deltas written meanwhile by another transaction are not seen by
-- the DELETE and stay, so nothing is lost or counted twice.
CREATE FUNCTION linkrunner.compact_row_counts() RETURNS void
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM linkrunner.campaign_row_counts RETURNING *)
    INSERT INTO linkrunner.campaign_row_counts (campaign_display_id, rows, changed_at)
    SELECT campaign_display_id, sum(rows), max(changed_at) FROM gone GROUP BY campaign_display_id
$$;

-- data_freshness as before, its per-campaign figures read from the counts and from the primary
-- key's last entry per campaign, not from an aggregate over every row.
CREATE OR REPLACE VIEW linkrunner.data_freshness AS
WITH last_success AS (
    SELECT run_id, started_at, finished_at
    FROM linkrunner.sync_runs
    WHERE outcome = 'success'
    ORDER BY finished_at DESC NULLS LAST
    LIMIT 1
),
stored AS (
    SELECT campaign_display_id, max(changed_at) AS rows_changed_at
    FROM linkrunner.campaign_row_counts
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
       (SELECT max(a.attributed_at) FROM linkrunner.attributed_users a
         WHERE a.campaign_display_id = c.display_id) AS last_signup_at,
       s.rows_changed_at,
       c.changed_at              AS listing_changed_at,
       c.last_seen_at            AS last_listed_at,
       r.run_id                  AS last_success_run_id,
       r.started_at              AS last_success_started_at,
       r.finished_at             AS last_success_finished_at,
       COALESCE(k.trusted_from <= now(), false) AS counter_trusted,
       CASE WHEN k.trusted_from <= now() THEN k.checked_at ELSE k.verified_at END AS confirmed_at
FROM linkrunner.campaigns c
LEFT JOIN linkrunner.sync_checkpoints k ON k.campaign_display_id = c.display_id
LEFT JOIN stored s ON s.campaign_display_id = c.display_id
LEFT JOIN last_success r ON true;

-- Keys `forget` finds a person's stored spellings by. The normal form of an ASCII email is
-- email_key's (ASCII letters folded, ASCII white space trimmed). Of any other email,
-- email_loose keeps what case folding cannot change: its ASCII characters lower-cased, less
-- white space and the letters some non-ASCII character folds to (a f h i j k l n s t w y, as
-- the job's tests check for every character); equal normal forms have equal loose keys, so
-- the rows found by it hold every spelling, and the job compares their normal forms. phone_key
-- is the normal form of any phone: '+' and its ASCII digits.
CREATE FUNCTION linkrunner.email_key(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT lower(btrim($1, E' \t\n\x0b\x0c\r') COLLATE "C") $$;

CREATE FUNCTION linkrunner.email_loose(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT regexp_replace(lower($1 COLLATE "C"), E'[^\x01-\x7f]|[afhijklnstwy \t\n\x0b\x0c\r]', '', 'g') $$;

CREATE FUNCTION linkrunner.phone_key(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN $1 ~ '[0-9]' THEN '+' || regexp_replace($1, '[^0-9]+', '', 'g') ELSE '' END $$;

CREATE INDEX attributed_users_email_key ON linkrunner.attributed_users
    (linkrunner.email_key(user_email)) WHERE user_email IS NOT NULL;
CREATE INDEX attributed_users_email_loose ON linkrunner.attributed_users
    (linkrunner.email_loose(user_email)) WHERE user_email ~ '[^\x01-\x7f]';
CREATE INDEX attributed_users_phone_key ON linkrunner.attributed_users
    (linkrunner.phone_key(user_phone)) WHERE user_phone IS NOT NULL;

-- Signups per local day of the IANA zone tz from first_day to last_day (inclusive), as
-- daily_signups_in(tz) counts them: the days' bounds are instants, so only those days' rows
-- are read through the attributed_at index, however long the history.
CREATE FUNCTION linkrunner.daily_signups_in(tz text, first_day date, last_day date)
RETURNS TABLE (day date, campaign_display_id text, ad_channel text, signups bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (a.attributed_at AT TIME ZONE tz)::date, a.campaign_display_id, a.ad_channel, count(*)
    FROM linkrunner.attributed_users_clean a
    WHERE a.attributed_at >= (first_day::timestamp AT TIME ZONE tz)
      AND a.attributed_at < ((last_day + 1)::timestamp AT TIME ZONE tz)
    GROUP BY 1, 2, 3
$$;

COMMENT ON FUNCTION linkrunner.daily_signups_in(text, date, date) IS
    'Signups per local day of an IANA zone, per campaign and ad channel, for the days first_day to last_day.';
