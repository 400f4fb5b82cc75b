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
