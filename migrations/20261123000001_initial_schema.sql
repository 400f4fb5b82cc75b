-- The warehouse tables and the sync's own state, in schema linkrunner.
CREATE SCHEMA IF NOT EXISTS linkrunner;

-- One row per campaign ever listed. raw keeps the whole listing item, unknown keys included.
CREATE TABLE linkrunner.campaigns (
    display_id       text PRIMARY KEY,
    name             text,
    created_at       timestamptz,
    update_at        timestamptz,
    google           boolean,
    meta             boolean,
    meta_campaign_id text,
    meta_web_to_app  boolean,
    active           boolean,
    default_link     boolean,
    attributed_users bigint,
    link             text,
    shareable_link   text,
    domain           text,
    raw              jsonb NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    -- When the listing content last changed.
    changed_at       timestamptz NOT NULL DEFAULT now(),
    -- Set when the campaign left a complete, unfiltered listing or answered 404.
    deleted_at       timestamptz
);

CREATE TABLE linkrunner.store_listings (
    store_listing_id text PRIMARY KEY,
    name             text,
    platform         text,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);

-- The store listings a campaign currently points at.
CREATE TABLE linkrunner.campaign_store_listings (
    display_id       text NOT NULL REFERENCES linkrunner.campaigns (display_id),
    store_listing_id text NOT NULL REFERENCES linkrunner.store_listings (store_listing_id),
    PRIMARY KEY (display_id, store_listing_id)
);

-- One row per attribution (a signup attributed to a campaign).
-- row_key is 'u:' || user_data.id, else 'd:' || a device identifier, else 'h:' || a SHA-256 of
-- the row. user_data is stored once, as received. extra holds unknown top-level keys, the
-- original of any value its typed column could not hold exactly, and under "__absent" the
-- documented keys the row did not carry, so the received row can be rebuilt exactly.
CREATE TABLE linkrunner.attributed_users (
    campaign_display_id text NOT NULL,
    attributed_at       timestamptz NOT NULL,
    row_key             text NOT NULL,
    user_id             text,
    ad_channel          text,
    campaign_name       text,
    link                text,
    installed_at        timestamptz,
    store_click_at      timestamptz,
    meta_ad_id          text,
    ad_creative_id      text,
    ad_creative_name    text,
    ad_set_id           text,
    ad_set_name         text,
    publisher_platform  text,
    platform_position   text,
    user_data           jsonb,
    extra               jsonb,
    -- The documented profile fields of user_data, typed; Postgres derives them on write.
    user_name           text GENERATED ALWAYS AS (user_data ->> 'name') STORED,
    user_email          text GENERATED ALWAYS AS (user_data ->> 'email') STORED,
    user_phone          text GENERATED ALWAYS AS (user_data ->> 'phone') STORED,
    first_synced_at     timestamptz NOT NULL DEFAULT now(),
    -- When the stored content last changed; unchanged rows are never rewritten.
    last_synced_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_display_id, attributed_at, row_key)
);
CREATE INDEX attributed_users_user_id ON linkrunner.attributed_users (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX attributed_users_attributed_at ON linkrunner.attributed_users (attributed_at);

-- One row per app user id, with the profile of its latest attribution. The full user_data of
-- that attribution is in attributed_users (latest_campaign_display_id, latest_attributed_at).
CREATE TABLE linkrunner.users (
    user_id                    text PRIMARY KEY,
    name                       text,
    email                      text,
    phone                      text,
    latest_campaign_display_id text NOT NULL,
    latest_attributed_at       timestamptz NOT NULL,
    first_synced_at            timestamptz NOT NULL DEFAULT now(),
    last_synced_at             timestamptz NOT NULL DEFAULT now()
);

-- Rows that could not be understood, kept as received, once per campaign and content.
CREATE TABLE linkrunner.rejected_rows (
    campaign_display_id text NOT NULL,
    raw_sha256          text NOT NULL,
    reason              text NOT NULL,
    raw                 jsonb NOT NULL,
    first_rejected_at   timestamptz NOT NULL DEFAULT now(),
    last_rejected_at    timestamptz NOT NULL DEFAULT now(),
    last_run_id         uuid NOT NULL,
    PRIMARY KEY (campaign_display_id, raw_sha256)
);

-- The ledger of runs.
CREATE TABLE linkrunner.sync_runs (
    run_id           uuid PRIMARY KEY,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- running, success, partial, failed, abandoned (died without finishing)
    outcome          text NOT NULL DEFAULT 'running',
    settings         jsonb NOT NULL,
    campaigns_listed integer NOT NULL DEFAULT 0,
    campaigns_synced integer NOT NULL DEFAULT 0,
    -- Of the synced: skipped because their attributed_users counter had not moved.
    campaigns_skipped integer NOT NULL DEFAULT 0,
    campaigns_failed integer NOT NULL DEFAULT 0,
    requests         bigint NOT NULL DEFAULT 0,
    rate_limited     bigint NOT NULL DEFAULT 0,
    retries          bigint NOT NULL DEFAULT 0,
    rows_received    bigint NOT NULL DEFAULT 0,
    rows_inserted    bigint NOT NULL DEFAULT 0,
    rows_updated     bigint NOT NULL DEFAULT 0,
    rows_rejected    bigint NOT NULL DEFAULT 0,
    error            text
);

-- Per campaign: [covered_from, synced_until) has been scanned with no gap.
CREATE TABLE linkrunner.sync_checkpoints (
    campaign_display_id text PRIMARY KEY,
    covered_from        timestamptz NOT NULL,
    synced_until        timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_run_id         uuid NOT NULL,
    -- The campaign list's attributed_users counter when a run last read the campaign up to its
    -- end, and when that was: while the counter stays put, runs skip the campaign, re-reading it
    -- anyway every --full-scan-every because the counters can lag.
    counter_at_sync     bigint,
    verified_at         timestamptz,
    -- When a run last confirmed the campaign current: read it up to its end, or saw its counter
    -- unchanged. Freshness is measured from here.
    checked_at          timestamptz,
    CHECK (covered_from <= synced_until)
);

-- Per campaign and scanned range: when it was last read completely. A range read at least the
-- lookback after its end is settled and is not read again unless --rescan.
CREATE TABLE linkrunner.sync_windows (
    campaign_display_id text NOT NULL,
    window_start        timestamptz NOT NULL,
    window_end          timestamptz NOT NULL,
    completed_at        timestamptz NOT NULL,
    run_id              uuid NOT NULL,
    requests            integer NOT NULL,
    rows_received       integer NOT NULL,
    rows_inserted       integer NOT NULL,
    rows_updated        integer NOT NULL,
    PRIMARY KEY (campaign_display_id, window_start),
    CHECK (window_start < window_end)
);
