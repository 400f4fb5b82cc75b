-- What --personal-data the schema's rows were stored under, so that a run asking for another mode,
-- other keys or another hashing key is refused rather than leaving a mix nobody knows about.
-- key_check: an HMAC of a fixed text under LINKRUNNER_PII_KEY (mode hash), telling keys apart
-- without revealing one.
CREATE TABLE linkrunner.personal_data (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    mode        text NOT NULL CHECK (mode IN ('keep', 'hash', 'drop')),
    keys        text[] NOT NULL,
    key_check   text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    run_id      uuid
);
