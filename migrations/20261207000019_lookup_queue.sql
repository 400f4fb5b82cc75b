-- Attribution look-ups kept due as rows are stored, instead of found by reading every row of
-- attributed_users for each batch of look-ups.

-- Present once a run with --attribution-details has put every id then due in lookup_queue:
-- from then on the triggers below note each id of a row stored.
CREATE TABLE linkrunner.lookup_watch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    since    timestamptz NOT NULL DEFAULT now()
);

-- Ids of rows stored or changed since the look-ups last read them; appended by the triggers
-- (never updated, so writers never wait on each other) and taken whole by the look-ups.
CREATE TABLE linkrunner.lookup_new_ids (
    lookup_kind  text NOT NULL,
    lookup_value text NOT NULL
);

-- Ids due for a look-up, and since when: not looked up yet, or with a row stored since that the
-- look-up may not have seen. Ids waiting after a miss are due by attribution_results.retry_at.
CREATE TABLE linkrunner.lookup_queue (
    lookup_kind  text NOT NULL,
    lookup_value text NOT NULL,
    due_at       timestamptz NOT NULL,
    PRIMARY KEY (lookup_kind, lookup_value)
);
CREATE INDEX lookup_queue_due ON linkrunner.lookup_queue (due_at, lookup_kind, lookup_value);

-- When an id whose last answer was no attribution is tried again; NULL when it is not waiting.
ALTER TABLE linkrunner.attribution_results ADD COLUMN retry_at timestamptz;
UPDATE linkrunner.attribution_results
SET retry_at = checked_at + (ARRAY['1 hour', '6 hours', '1 day', '3 days', '7 days']::interval[])[misses]
WHERE found IS NOT TRUE AND misses BETWEEN 1 AND 5;
CREATE INDEX attribution_results_retry ON linkrunner.attribution_results (retry_at)
    WHERE retry_at IS NOT NULL;

-- A row's look-up ids: its user id, or without one its device's advertising ids.
CREATE FUNCTION linkrunner.note_lookup_ids() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM linkrunner.lookup_watch) THEN
        INSERT INTO linkrunner.lookup_new_ids (lookup_kind, lookup_value)
        SELECT DISTINCT 'user_id', user_id FROM written WHERE user_id <> ''
        UNION
        SELECT 'device_identifier', d.value
        FROM written a
        CROSS JOIN LATERAL (VALUES (a.user_data #>> '{device_data,gaid}'),
                                   (a.user_data #>> '{device_data,idfa}')) AS d(value)
        WHERE coalesce(a.user_id, '') = ''
          AND d.value NOT IN ('', '00000000-0000-0000-0000-000000000000');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER attributed_users_note_inserted AFTER INSERT ON linkrunner.attributed_users
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION linkrunner.note_lookup_ids();
CREATE TRIGGER attributed_users_note_updated AFTER UPDATE ON linkrunner.attributed_users
    REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION linkrunner.note_lookup_ids();

-- An id's rows are found through these (rows with a user id through attributed_users_user_id).
CREATE INDEX attributed_users_gaid ON linkrunner.attributed_users
    ((user_data #>> '{device_data,gaid}')) WHERE coalesce(user_id, '') = '';
CREATE INDEX attributed_users_idfa ON linkrunner.attributed_users
    ((user_data #>> '{device_data,idfa}')) WHERE coalesce(user_id, '') = '';

-- An answer deleted (by hand, or to ask again) leaves its id never looked up: noted, so it is due
-- again if rows still hold it.
CREATE FUNCTION linkrunner.note_deleted_results() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM linkrunner.lookup_watch) THEN
        INSERT INTO linkrunner.lookup_new_ids (lookup_kind, lookup_value)
        SELECT lookup_kind, lookup_value FROM deleted;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER attribution_results_note_deleted AFTER DELETE ON linkrunner.attribution_results
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION linkrunner.note_deleted_results();
