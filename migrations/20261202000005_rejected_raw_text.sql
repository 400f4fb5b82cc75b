-- rejected_rows keeps each item set aside exactly as received, and takes items of the campaign
-- list too.
-- raw_text: the item's JSON text as received; bytes that were not UTF-8 are written as the
-- escape \udcXX of byte 0xXX (PEP 383's "surrogateescape"), which no item Postgres stores holds.
-- raw: the same item as jsonb, with each escape Postgres cannot store (\u0000, a lone surrogate,
-- an escaped byte) written as text (its backslash doubled); NULL when Postgres cannot read the
-- item even so. kind: 'attributed_user' (a row of campaign_display_id) or 'campaign' (an item
-- of the campaign list, under its display_id, or '(display_id not storable)' when that cannot
-- be stored either). raw_sha256 is now the hash of raw_text; rows kept before this migration
-- have raw_text = raw::text, which is what their hash was taken of.
ALTER TABLE linkrunner.rejected_rows
    ADD COLUMN raw_text text,
    ADD COLUMN kind     text NOT NULL DEFAULT 'attributed_user'
        CHECK (kind IN ('attributed_user', 'campaign')),
    ALTER COLUMN raw DROP NOT NULL;
UPDATE linkrunner.rejected_rows SET raw_text = raw::text;
ALTER TABLE linkrunner.rejected_rows ALTER COLUMN raw_text SET NOT NULL;

-- The text as jsonb, or NULL where Postgres cannot read it (the sync decides what to store on
-- this, so one item Postgres refuses never fails the others).
CREATE FUNCTION linkrunner.try_jsonb(text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN $1::jsonb;
EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
    RETURN NULL;
END
$$;
