-- What --personal-data the schema's rows were stored under, so that a run asking for other settings
-- either rewrites what is stored (--rewrite-personal-data) or is refused, never leaving a mix
-- nobody knows about.
-- key_check: an HMAC of a fixed text under LINKRUNNER_PII_KEY, telling keys apart without
-- revealing one. The to_* columns hold a rewrite under way; it goes through attributed_users in
-- key order, and through_campaign/through_at is how far it has committed.
CREATE TABLE linkrunner.personal_data (
    only_row         boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    mode             text NOT NULL CHECK (mode IN ('keep', 'hash', 'drop')),
    keys             text[] NOT NULL,
    key_check        text,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    run_id           uuid,
    to_mode          text CHECK (to_mode IN ('hash', 'drop')),
    to_keys          text[],
    to_key_check     text,
    rewrite_started  timestamptz,
    through_campaign text,
    through_at       timestamptz,
    rows_rewritten   bigint NOT NULL DEFAULT 0
);

-- Each finished rewrite of the stored personal data.
CREATE TABLE linkrunner.personal_data_changes (
    run_id             uuid NOT NULL,
    from_mode          text NOT NULL,
    to_mode            text NOT NULL,
    from_keys          text[] NOT NULL,
    to_keys            text[] NOT NULL,
    rows_rewritten     bigint NOT NULL,
    rejected_rewritten bigint NOT NULL,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL DEFAULT now()
);

-- People erased by `linkrunner-sync forget`, as a SHA-256 of their normalised user id, email or
-- phone, never the value: rows the API sends for them are dropped at the door.
CREATE TABLE linkrunner.suppressed (
    kind         text NOT NULL CHECK (kind IN ('user_id', 'email', 'phone')),
    digest       text NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, digest)
);

-- One row per attributed-user row erased or dropped for a suppressed person, holding only its
-- place and a digest of its key: the campaign's counter still counts such rows, and checking
-- the counter against the rows stored counts these too.
CREATE TABLE linkrunner.forgotten_rows (
    campaign_display_id text NOT NULL,
    attributed_at       timestamptz NOT NULL,
    key_digest          text NOT NULL,
    forgotten_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_display_id, attributed_at, key_digest)
);

ALTER TABLE linkrunner.sync_runs ADD COLUMN rows_forgotten bigint NOT NULL DEFAULT 0;
