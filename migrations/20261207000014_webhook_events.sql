-- Linkrunner's install and signup webhooks, as `linkrunner-sync receive` takes them: one row per
-- distinct event (a redelivery counts in `deliveries`), the documented fields typed, the body as
-- received (after the personal-data door).
CREATE TABLE linkrunner.webhook_events (
    -- A digest of event_type, campaign_id, the user id (else gaid, else idfa) and attributed_on;
    -- 'body:' and the body's digest for an event with neither user nor device id.
    event_key               text PRIMARY KEY,
    event_type              text NOT NULL CHECK (event_type IN ('install', 'signup')),
    user_id                 text,
    campaign_id             text,
    campaign_name           text,
    network_name            text,
    ad_channel              text,
    attributed_on           timestamptz,
    installed_at            timestamptz,
    store_click_at          timestamptz,
    link                    text,
    app_version             text,
    gaid                    text,
    idfa                    text,
    name                    text,
    phone                   text,
    email                   text,
    additional_data         jsonb,
    meta_campaign_details   jsonb,
    google_campaign_details jsonb,
    body                    text NOT NULL,
    first_received_at       timestamptz NOT NULL DEFAULT now(),
    last_received_at        timestamptz NOT NULL DEFAULT now(),
    deliveries              integer NOT NULL DEFAULT 1
);
CREATE INDEX webhook_events_campaign ON linkrunner.webhook_events (campaign_id, attributed_on);
CREATE INDEX webhook_events_user ON linkrunner.webhook_events (user_id) WHERE user_id IS NOT NULL;

-- Authentic deliveries that could not be read as an event, kept with the reason.
CREATE TABLE linkrunner.webhook_rejected (
    body_sha256       text PRIMARY KEY,
    reason            text NOT NULL,
    -- As received in `keep` mode; through the door otherwise, NULL when it cannot be read.
    body              bytea,
    first_received_at timestamptz NOT NULL DEFAULT now(),
    last_received_at  timestamptz NOT NULL DEFAULT now(),
    deliveries        integer NOT NULL DEFAULT 1
);
