#!/usr/bin/env bash
# The demo: a fresh database with the reference CRM and generated data, the extension, and one
# erasure request against a contact, printing the report.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${1:-erasure_demo}
psql_db() { psql -X -v ON_ERROR_STOP=1 -q -d "$DB" "$@"; }

dropdb --if-exists "$DB"
createdb "$DB"
psql_db -f sql/crm_schema.sql -f sql/crm_generate.sql
echo "== generating the reference CRM (5 organizations x 100 contacts)"
psql_db -Atc "SELECT jsonb_pretty(public.crm_generate(5, 100))" | head -30
echo "== installing pg_erasure (default modules: eu-gdpr retention, legal hold)"
psql_db -c "CREATE EXTENSION pg_erasure"
psql_db -c "SELECT erasure.load_data_map(erasure.reference_data_map())"
contact=$(psql_db -Atc "SELECT min(c.id) FROM contacts c JOIN conversations v ON v.contact_id = c.id")
echo "== preview of contact:$contact"
psql_db -Atc "SELECT jsonb_pretty(erasure.preview_erasure('contact:$contact') -> 'totals')"
echo "== SELECT erasure.request_erasure('contact:$contact')"
psql_db -Atc "SELECT jsonb_pretty(erasure.request_erasure('contact:$contact', source => 'email'))"
org=$(psql_db -Atc "SELECT max(id) FROM organizations")
echo "== SELECT erasure.request_erasure('org:$org')  (invoices kept 7 years, audit rows anonymised)"
psql_db -Atc "SELECT jsonb_pretty(erasure.request_erasure('org:$org') -> 'tables')"
echo "== ledger of kept rows"
psql_db -c "SELECT table_name, action, count(*), min(until)::date AS first_due, max(until)::date AS last_due, min(basis) AS basis
              FROM erasure.ledger GROUP BY 1, 2 ORDER BY 1, 2"
