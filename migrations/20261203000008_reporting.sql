-- The Reporting API's numbers (sync --reporting): per local day of the project's timezone (as
-- the dashboard sets it, recorded in project_timezone), campaign (display_id as received) and view,
-- and the same for the ad sets, ad creatives and Apple Search Ads keywords below a campaign.
-- Counts and money are numeric, money in `currency`, conversion in percent as sent (95.38 for
-- "95.38%"). A value the API sent that is not a number in the documented format is NULL here and
-- its name is in `unparsed`; `raw` keeps the item as received (without the levels below it and
-- without the connected ad account). changed_at is when a number last changed: a re-read that
-- finds the same numbers rewrites nothing.

CREATE TABLE linkrunner.reporting_daily (
    day                        date NOT NULL,
    display_id                 text NOT NULL,
    view                       text NOT NULL CHECK (view IN ('user_acquisition', 'retargeting')),
    name                       text,
    clicks                     numeric,
    installs                   numeric,
    signups                    numeric,
    reinstalls                 numeric,
    reengagements              numeric,
    uninstalls                 numeric,
    suspicious_installs        numeric,
    click_through_attribution  numeric,
    view_through_attribution   numeric,
    conversion                 numeric,
    revenue                    numeric,
    spend                      numeric,
    roas                       numeric,
    cost_per_install           numeric,
    cost_per_reinstall         numeric,
    cost_per_signup            numeric,
    revenue_event_count        numeric,
    currency                   text,
    project_timezone           text NOT NULL,
    unparsed                   text[] NOT NULL DEFAULT '{}',
    raw                        jsonb,
    first_fetched_at           timestamptz NOT NULL DEFAULT now(),
    changed_at                 timestamptz NOT NULL DEFAULT now(),
    run_id                     uuid NOT NULL,
    PRIMARY KEY (day, display_id, view)
);

-- One row per ad set of a campaign and day.
CREATE TABLE linkrunner.reporting_ad_sets (
    day                        date NOT NULL,
    display_id                 text NOT NULL,
    view                       text NOT NULL CHECK (view IN ('user_acquisition', 'retargeting')),
    ad_set_id                  text NOT NULL,
    name                       text,
    clicks                     numeric,
    installs                   numeric,
    signups                    numeric,
    reinstalls                 numeric,
    reengagements              numeric,
    uninstalls                 numeric,
    suspicious_installs        numeric,
    click_through_attribution  numeric,
    view_through_attribution   numeric,
    conversion                 numeric,
    revenue                    numeric,
    spend                      numeric,
    roas                       numeric,
    cost_per_install           numeric,
    cost_per_reinstall         numeric,
    cost_per_signup            numeric,
    revenue_event_count        numeric,
    currency                   text,
    project_timezone           text NOT NULL,
    unparsed                   text[] NOT NULL DEFAULT '{}',
    raw                        jsonb,
    first_fetched_at           timestamptz NOT NULL DEFAULT now(),
    changed_at                 timestamptz NOT NULL DEFAULT now(),
    run_id                     uuid NOT NULL,
    PRIMARY KEY (day, display_id, view, ad_set_id)
);

-- One row per ad creative of an ad set and day.
CREATE TABLE linkrunner.reporting_ad_creatives (
    day                        date NOT NULL,
    display_id                 text NOT NULL,
    view                       text NOT NULL CHECK (view IN ('user_acquisition', 'retargeting')),
    ad_set_id                  text NOT NULL,
    ad_creative_id             text NOT NULL,
    name                       text,
    clicks                     numeric,
    installs                   numeric,
    signups                    numeric,
    reinstalls                 numeric,
    reengagements              numeric,
    uninstalls                 numeric,
    suspicious_installs        numeric,
    click_through_attribution  numeric,
    view_through_attribution   numeric,
    conversion                 numeric,
    revenue                    numeric,
    spend                      numeric,
    roas                       numeric,
    cost_per_install           numeric,
    cost_per_reinstall         numeric,
    cost_per_signup            numeric,
    revenue_event_count        numeric,
    currency                   text,
    project_timezone           text NOT NULL,
    unparsed                   text[] NOT NULL DEFAULT '{}',
    raw                        jsonb,
    first_fetched_at           timestamptz NOT NULL DEFAULT now(),
    changed_at                 timestamptz NOT NULL DEFAULT now(),
    run_id                     uuid NOT NULL,
    PRIMARY KEY (day, display_id, view, ad_set_id, ad_creative_id)
);

-- One row per Apple Search Ads keyword of an ad set and day.
CREATE TABLE linkrunner.reporting_keywords (
    day                        date NOT NULL,
    display_id                 text NOT NULL,
    view                       text NOT NULL CHECK (view IN ('user_acquisition', 'retargeting')),
    ad_set_id                  text NOT NULL,
    keyword_id                 text NOT NULL,
    name                       text,
    clicks                     numeric,
    installs                   numeric,
    signups                    numeric,
    reinstalls                 numeric,
    reengagements              numeric,
    uninstalls                 numeric,
    suspicious_installs        numeric,
    click_through_attribution  numeric,
    view_through_attribution   numeric,
    conversion                 numeric,
    revenue                    numeric,
    spend                      numeric,
    roas                       numeric,
    cost_per_install           numeric,
    cost_per_reinstall         numeric,
    cost_per_signup            numeric,
    revenue_event_count        numeric,
    currency                   text,
    project_timezone           text NOT NULL,
    unparsed                   text[] NOT NULL DEFAULT '{}',
    raw                        jsonb,
    first_fetched_at           timestamptz NOT NULL DEFAULT now(),
    changed_at                 timestamptz NOT NULL DEFAULT now(),
    run_id                     uuid NOT NULL,
    PRIMARY KEY (day, display_id, view, ad_set_id, keyword_id)
);

-- How far each day is read, per view. A day is read page by page, oldest campaigns first; each
-- page's rows commit with next_page, so a run stopped between pages goes on at the next one.
-- read_at: when the last page of the latest full read arrived. settled: read in full after the day
-- left the reporting lookback, so its numbers no longer change and it is not read again (unless
-- --rescan).
CREATE TABLE linkrunner.reporting_days (
    day              date NOT NULL,
    view             text NOT NULL CHECK (view IN ('user_acquisition', 'retargeting')),
    project_timezone text NOT NULL,
    next_page        integer NOT NULL DEFAULT 1,
    read_at          timestamptz,
    settled          boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, view)
);

ALTER TABLE linkrunner.sync_runs
    ADD COLUMN reporting_requests     bigint NOT NULL DEFAULT 0,
    ADD COLUMN reporting_rate_limited bigint NOT NULL DEFAULT 0,
    ADD COLUMN reporting_days         bigint NOT NULL DEFAULT 0;
