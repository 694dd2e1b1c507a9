//! `purge_due()`: deletes kept rows whose time is up, children before parents, in batches small
//! enough that no statement holds its row locks for long.

use std::collections::BTreeMap;

use erasure_core::sql::{quote_ident, quote_table};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use serde::Serialize;

use super::datamap;
use super::statements::{prepared, run, StatementId};
use crate::error::ExtResult;
use crate::guc;

/// A ledger row is due when its date has passed (or it had none and only a hold kept it) and
/// no active hold still covers it.
/// A ledger row is due when its date has passed (or it had none and only a hold kept it) and
/// no active hold still covers it. Both date tests are ranges of the (table_name, until) index.
const DUE: &str = "(l.until <= now() OR (l.until IS NULL AND l.action = 'held'))
   AND (l.case_ref IS NULL OR NOT EXISTS (
        SELECT 1 FROM erasure.legal_holds h
         WHERE h.case_ref = l.case_ref AND h.released_at IS NULL AND (h.expires_at IS NULL OR h.expires_at > now())))";

#[derive(Debug, Default, Serialize)]
pub struct PurgeCounts {
    pub purged: i64,
    pub still_held: i64,
}

pub fn purge_due(client: &mut SpiClient<'_>) -> ExtResult<serde_json::Value> {
    let map = datamap::active(client)?;
    let batch = guc::PURGE_BATCH_ROWS.get() as i64;
    let mut tables: BTreeMap<String, PurgeCounts> = BTreeMap::new();
    let mut batches = 0;
    for (index, table) in map.map.delete_order.iter().enumerate() {
        let spec = map.map.table(table);
        let stmt = prepared(
            client,
            StatementId::Purge {
                map_id: map.id,
                table: index,
            },
            || {
                format!(
                    // Keys as arrays: both deletes are index probes whatever the planner
                    // guesses of the batch size (a join could pick a scan of a large table).
                    "WITH due AS MATERIALIZED (SELECT l.id, l.row_key FROM erasure.ledger l
                                   WHERE l.table_name = {name} AND {DUE} LIMIT $1),
                          gone AS (DELETE FROM {tbl} t WHERE t.{key} = ANY (ARRAY(SELECT row_key FROM due)) RETURNING 1)
                     DELETE FROM erasure.ledger l WHERE l.id = ANY (ARRAY(SELECT id FROM due))
                     RETURNING (SELECT count(*) FROM gone)",
                    name = erasure_core::sql::quote_literal(table),
                    tbl = quote_table(table),
                    key = quote_ident(&spec.key),
                )
            },
            || vec![PgOid::from(pg_sys::INT8OID)],
        )?;
        let counts = tables.entry(table.clone()).or_default();
        loop {
            let result = run(client, &stmt, &[batch.into()])?;
            let ledger_rows = result.len() as i64;
            let purged: i64 = if ledger_rows > 0 {
                result.first().get_one::<i64>()?.unwrap_or(0)
            } else {
                0
            };
            batches += 1;
            counts.purged += purged;
            if ledger_rows < batch {
                break;
            }
        }
        counts.still_held = client
            .select(
                "SELECT count(*) FROM erasure.ledger WHERE table_name = $1",
                None,
                &[table.as_str().into()],
            )?
            .first()
            .get_one::<i64>()?
            .unwrap_or(0);
    }
    tables.retain(|_, c| c.purged > 0 || c.still_held > 0);
    let total: i64 = tables.values().map(|c| c.purged).sum();
    client.update(
        "INSERT INTO erasure.audit_log (event, detail) VALUES ('purge_due', jsonb_build_object('purged', $1::bigint))",
        None,
        &[total.into()],
    )?;
    Ok(serde_json::json!({"tables": tables, "purged": total, "batches": batches}))
}
