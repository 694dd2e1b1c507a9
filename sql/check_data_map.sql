-- Check a data map (policies/data_map.json) against the live schema.
--
--   psql -X -v ON_ERROR_STOP=1 -d DB -v map="$(cat policies/data_map.json)" \
--        [-v schema=public] -f sql/check_data_map.sql
--
-- Lists every problem found, then fails (exit status 3 under ON_ERROR_STOP)
-- if there is any. Checks:
--   * every table of the schema is in the map and every mapped table exists;
--   * the key is the table's single-column primary key;
--   * the tenant column exists, is NOT NULL and references organizations
--     (every table but the tenant table itself);
--   * every foreign key is single-column, NO ACTION, and listed in `links`
--     with the right parent; every link is a real foreign key;
--     `mode` is absent, "own" or "detach";
--   * every foreign-key column leads some index;
--   * personal_data / attrs / anonymize / outbox / subject columns exist;
--     anonymize-to-null columns are nullable; personal_data columns are
--     all anonymised (so anonymised rows hold none).
-- Read-only: it creates only a temporary view, dropped at the end.

\if :{?schema}
\else
\set schema public
\endif

SELECT set_config('crm_check.map', :'map', false),
       set_config('crm_check.schema', :'schema', false) \g /dev/null

CREATE TEMP VIEW _crm_check_problems AS
WITH
m AS (SELECT current_setting('crm_check.map')::jsonb AS map,
             current_setting('crm_check.schema') AS nsp),
tab AS (                      -- tables of the schema
    SELECT c.oid, c.relname::text AS tname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, m
    WHERE n.nspname = m.nsp AND c.relkind IN ('r', 'p') AND NOT c.relispartition),
mt AS (                       -- tables of the map
    SELECT t.key AS tname, t.value AS spec
    FROM m, jsonb_each(m.map -> 'tables') AS t),
col AS (
    SELECT tab.tname, a.attname::text AS cname, a.attnotnull AS notnull, a.attnum
    FROM tab JOIN pg_attribute a ON a.attrelid = tab.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped),
fk AS (
    SELECT ct.conname::text AS conname, ch.tname AS child, pa.tname AS parent,
           ct.conkey, ct.confdeltype, ct.confupdtype,
           (SELECT a.attname::text FROM pg_attribute a
            WHERE a.attrelid = ct.conrelid AND a.attnum = ct.conkey[1]) AS cname,
           ct.conrelid, ct.conkey[1] AS attnum
    FROM pg_constraint ct
    JOIN tab ch ON ch.oid = ct.conrelid
    LEFT JOIN tab pa ON pa.oid = ct.confrelid
    WHERE ct.contype = 'f'),
link AS (
    SELECT mt.tname AS child, l.value ->> 'column' AS cname,
           l.value ->> 'parent' AS parent, l.value ->> 'mode' AS mode
    FROM mt, jsonb_array_elements(coalesce(mt.spec -> 'links', '[]')) AS l),
tenant AS (SELECT m.map ->> 'tenant_column' AS tcol FROM m),
tenant_table AS (   -- the table every tenant column points at
    SELECT coalesce((SELECT s.value -> 0 ->> 'table' FROM m, jsonb_each(m.map -> 'subjects') s
                     WHERE s.key = 'org'), 'organizations') AS tname),
colrefs AS (        -- every column the map names, with what it is used for
    SELECT mt.tname, 'personal_data' AS what, x.value #>> '{}' AS cname
    FROM mt, jsonb_array_elements(coalesce(mt.spec -> 'personal_data', '[]')) x
    UNION ALL
    SELECT mt.tname, 'attrs', x.value #>> '{}'
    FROM mt, jsonb_array_elements(coalesce(mt.spec -> 'attrs', '[]')) x
    UNION ALL
    SELECT mt.tname, 'anonymize', x.key
    FROM mt, jsonb_each(coalesce(mt.spec -> 'anonymize', '{}')) x
    UNION ALL
    SELECT mt.tname, 'outbox', mt.spec ->> 'outbox'
    FROM mt WHERE mt.spec ? 'outbox'
    UNION ALL
    SELECT mt.tname, 'key', coalesce(mt.spec ->> 'key', 'id') FROM mt
    UNION ALL
    SELECT mt.tname, 'links', l.cname FROM link l JOIN mt ON mt.tname = l.child
    UNION ALL
    SELECT s.value ->> 'table', 'subject ' || sj.key, s.value ->> 'column'
    FROM m, jsonb_each(m.map -> 'subjects') sj, jsonb_array_elements(sj.value) s)
-- tables
SELECT 'table ' || tab.tname || ' is not in the data map' AS problem
FROM tab WHERE NOT EXISTS (SELECT 1 FROM mt WHERE mt.tname = tab.tname)
UNION ALL
SELECT 'mapped table ' || mt.tname || ' does not exist'
FROM mt WHERE NOT EXISTS (SELECT 1 FROM tab WHERE tab.tname = mt.tname)
UNION ALL
SELECT 'table ' || mt.tname || ' has no category'
FROM mt WHERE coalesce(mt.spec ->> 'category', '') = ''
-- primary key
UNION ALL
SELECT 'table ' || mt.tname || ': key ' || coalesce(mt.spec ->> 'key', 'id')
       || ' is not its single-column primary key'
FROM mt JOIN tab ON tab.tname = mt.tname
WHERE NOT EXISTS (
    SELECT 1 FROM pg_constraint p
    JOIN pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = p.conkey[1]
    WHERE p.conrelid = tab.oid AND p.contype = 'p' AND cardinality(p.conkey) = 1
      AND a.attname = coalesce(mt.spec ->> 'key', 'id'))
-- tenant column
UNION ALL
SELECT 'table ' || tab.tname || ': tenant column ' || tenant.tcol
       || ' missing, nullable or not a foreign key to ' || tenant_table.tname
FROM tab, tenant, tenant_table
WHERE tab.tname <> tenant_table.tname
  AND NOT EXISTS (
    SELECT 1 FROM col JOIN fk ON fk.child = col.tname AND fk.cname = col.cname
    WHERE col.tname = tab.tname AND col.cname = tenant.tcol AND col.notnull
      AND fk.parent = tenant_table.tname)
-- foreign keys vs links
UNION ALL
SELECT 'foreign key ' || fk.conname || ' on ' || fk.child || ' has ' || cardinality(fk.conkey)
       || ' columns (the engine handles single-column keys only)'
FROM fk WHERE cardinality(fk.conkey) <> 1
UNION ALL
SELECT 'foreign key ' || fk.conname || ' on ' || fk.child || ' is not NO ACTION'
FROM fk WHERE fk.confdeltype <> 'a' OR fk.confupdtype <> 'a'
UNION ALL
SELECT 'foreign key ' || fk.conname || ' (' || fk.child || '.' || fk.cname || ' -> '
       || coalesce(fk.parent, '?') || ') is not in links'
FROM fk WHERE NOT EXISTS (
    SELECT 1 FROM link WHERE link.child = fk.child AND link.cname = fk.cname
                         AND link.parent = fk.parent)
UNION ALL
SELECT 'link ' || link.child || '.' || link.cname || ' -> ' || coalesce(link.parent, '?')
       || ' is not a foreign key'
FROM link WHERE NOT EXISTS (
    SELECT 1 FROM fk WHERE fk.child = link.child AND fk.cname = link.cname
                       AND fk.parent = link.parent)
UNION ALL
SELECT 'link ' || link.child || '.' || link.cname || ' has unknown mode ' || link.mode
FROM link WHERE link.mode IS NOT NULL AND link.mode NOT IN ('own', 'detach')
UNION ALL
SELECT 'link ' || link.child || '.' || link.cname || ' is detach but the column is NOT NULL'
FROM link JOIN col ON col.tname = link.child AND col.cname = link.cname
WHERE link.mode = 'detach' AND col.notnull
-- indexes on foreign-key columns
UNION ALL
SELECT 'foreign key column ' || fk.child || '.' || fk.cname || ' has no index'
FROM fk WHERE NOT EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = fk.conrelid AND i.indkey[0] = fk.attnum AND i.indpred IS NULL)
-- columns named by the map
UNION ALL
SELECT 'table ' || coalesce(r.tname, '?') || ': ' || r.what || ' column '
       || coalesce(r.cname, '?') || ' does not exist'
FROM colrefs r
WHERE NOT EXISTS (SELECT 1 FROM col WHERE col.tname = r.tname AND col.cname = r.cname)
UNION ALL
SELECT 'table ' || mt.tname || ': anonymize sets NOT NULL column ' || x.key || ' to null'
FROM mt, jsonb_each(coalesce(mt.spec -> 'anonymize', '{}')) x
JOIN col ON col.cname = x.key
WHERE col.tname = mt.tname AND jsonb_typeof(x.value) = 'null' AND col.notnull
UNION ALL
SELECT 'table ' || mt.tname || ': personal_data column ' || (p.value #>> '{}')
       || ' has no anonymize rule'
FROM mt, jsonb_array_elements(coalesce(mt.spec -> 'personal_data', '[]')) p
WHERE NOT coalesce(mt.spec -> 'anonymize', '{}') ? (p.value #>> '{}');

\pset footer off
SELECT problem AS "data map problems" FROM _crm_check_problems ORDER BY 1;
\pset footer on

DO $$
DECLARE n int;
BEGIN
    SELECT count(*) INTO n FROM _crm_check_problems;
    DROP VIEW _crm_check_problems;
    IF n > 0 THEN
        RAISE EXCEPTION 'data map check failed: % problem(s)', n;
    END IF;
    RAISE NOTICE 'data map check passed';
END
$$;
