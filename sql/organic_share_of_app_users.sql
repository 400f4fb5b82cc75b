-- What share of the app's own users came organically, and what share through campaigns?
-- Needs sync --attribution-details --lookup-from <schema.table.column>; to count one table's
-- users only, join it on lookup_value. Unknown: Linkrunner knows nothing of the user (204).
SELECT count(*) FILTER (WHERE attribution_type = 'ORGANIC')   AS organic,
       count(*) FILTER (WHERE attribution_type = 'INORGANIC') AS paid,
       count(*) FILTER (WHERE found IS FALSE)                  AS unknown,
       round(100.0 * count(*) FILTER (WHERE attribution_type = 'ORGANIC')
             / nullif(count(*) FILTER (WHERE found), 0), 1)    AS organic_pct
FROM linkrunner.attribution_results
WHERE lookup_kind = 'user_id';
