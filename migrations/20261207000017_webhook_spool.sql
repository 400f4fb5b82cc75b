-- How far each spool segment of `linkrunner-sync receive` has been drained, written in the
-- transaction that stores its events: a segment drained again after a crash skips what is
-- already stored, so no delivery is counted twice.
CREATE TABLE linkrunner.webhook_spool_drained (
    segment    text PRIMARY KEY,
    records    bigint NOT NULL,
    drained_at timestamptz NOT NULL DEFAULT now()
);
