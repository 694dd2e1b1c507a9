//! `purge_due()`: deletes kept rows whose time is up, children before parents, in batches small
//! enough that no statement holds its row locks for long.
//!
//! Each batch is one statement: it reads the next due ledger rows in `(until, id)` order from
//! where the previous batch stopped (so deleted rows are never walked twice), deletes the data
//! rows by key and the ledger chunks by their `ctid`, read in that same statement.
//! `purge_due(max_batches)` stops after that many batches; `erasure.purge_due_in_batches()`
//! calls it one batch per transaction, so no lock outlives a batch. Batches are sized per table
//! to take about `erasure.purge_batch_ms` (at most `erasure.purge_batch_rows` rows).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use erasure_core::batch::BatchSizer;

use erasure_core::sql::{quote_ident, quote_literal, quote_table};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use serde::Serialize;

use super::datamap;
use super::statements::{first_value, prepared, run, PurgePass, StatementId};
use crate::error::ExtResult;
use crate::guc;

/// No active hold still covers the ledger row `l`.
const NOT_HELD: &str = "(l.case_ref IS NULL OR NOT EXISTS (
        SELECT 1 FROM erasure.legal_holds h
         WHERE h.case_ref = l.case_ref AND h.released_at IS NULL AND (h.expires_at IS NULL OR h.expires_at > now())))";

thread_local! {
    /// Each table's batch sizer, by (data map id, table): kept across calls, so the one-batch
    /// calls of `purge_due_in_batches()` size their batches too.
    static SIZERS: RefCell<HashMap<(i64, usize), BatchSizer>> = RefCell::new(HashMap::new());
}

#[derive(Debug, Default, Serialize)]
pub struct PurgeCounts {
    pub purged: i64,
    /// Ledger rows of the table left after this call; absent for the table a limited call
    /// stopped in (counting them every batch would cost more than the batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_held: Option<i64>,
}

/// The batch statement of one table and pass. Parameters: `$1` batch size (rows), then the
/// keyset position: `$2` until and `$3` id for dated chunks, `$2` id for undated ones. Returns
/// the ledger chunks read, the data rows deleted, the chunks deleted, the position of the
/// last chunk read, and, where `keys` (the table has foreign keys into it to check), the
/// deleted keys as an array.
fn batch_sql(table: &str, key: &str, pass: PurgePass, keys: bool) -> String {
    let (due, order) = match pass {
        // Rows whose date has passed: a range of the (table_name, until, id) index.
        PurgePass::Dated => (
            "l.until <= now() AND (l.until, l.id) > ($2, $3)",
            "l.until, l.id",
        ),
        // Rows only a hold kept (no date): due once no active hold covers them.
        PurgePass::Undated => (
            "l.until IS NULL AND l.action = 'held' AND l.id > $2",
            "l.id",
        ),
    };
    format!(
        // Whole chunks, in order, until the batch has its rows (it overshoots by less than a
        // chunk). Keys as arrays: both deletes are index or TID probes whatever the planner
        // guesses of the batch size (a join could pick a scan of a large table).
        "WITH due AS MATERIALIZED (
              SELECT s.tid, s.id, s.until, s.row_keys FROM (
                  SELECT l.ctid AS tid, l.id, l.until, l.row_keys, l.row_count,
                         sum(l.row_count) OVER (ORDER BY {order} ROWS UNBOUNDED PRECEDING) AS upto
                    FROM erasure.ledger_chunks l
                   WHERE l.table_name = {name} AND {due} AND {NOT_HELD}
                   ORDER BY {order} LIMIT $1) s
               WHERE s.upto - s.row_count < $1),
              gone AS (DELETE FROM {tbl} t WHERE t.{key} = ANY (ARRAY(SELECT unnest(d.row_keys) FROM due d)) RETURNING t.{key} AS key),
              settled AS (DELETE FROM erasure.ledger_chunks l WHERE l.ctid = ANY (ARRAY(SELECT tid FROM due)) RETURNING 1)
         SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM gone), (SELECT count(*) FROM settled),
                last.until, last.id, {deleted_keys}
           FROM (SELECT 1) one
           LEFT JOIN LATERAL (SELECT d.until, d.id FROM due d ORDER BY {last} LIMIT 1) last ON true",
        name = quote_literal(table),
        deleted_keys = if keys {
            "(SELECT array_agg(g.key) FROM gone g)"
        } else {
            "NULL::bigint[]"
        },
        tbl = quote_table(table),
        key = quote_ident(key),
        last = match pass {
            PurgePass::Dated => "d.until DESC, d.id DESC",
            PurgePass::Undated => "d.id DESC",
        },
    )
}

/// Indexes (into `delete_order`) of the tables that have due ledger chunks, in delete order:
/// one statement, so a call does not run every table's batch statement to find out.
fn due_tables(client: &SpiClient<'_>, delete_order: &[String]) -> ExtResult<Vec<usize>> {
    let stmt = prepared(
        client,
        StatementId::Fixed("purge_due_tables"),
        || {
            format!(
                "SELECT t.i FROM unnest($1::text[]) WITH ORDINALITY AS t(name, i)
                  WHERE EXISTS (SELECT 1 FROM erasure.ledger_chunks l
                                 WHERE l.table_name = t.name AND l.until <= now() AND {NOT_HELD})
                     OR EXISTS (SELECT 1 FROM erasure.ledger_chunks l
                                 WHERE l.table_name = t.name AND l.until IS NULL AND l.action = 'held' AND {NOT_HELD})
                  ORDER BY t.i"
            )
        },
        || vec![PgOid::from(pg_sys::TEXTARRAYOID)],
    )?;
    let mut out = Vec::new();
    for row in client.select(&*stmt, None, &[delete_order.to_vec().into()])? {
        if let Some(i) = row.get::<i64>(1)? {
            out.push((i - 1) as usize);
        }
    }
    Ok(out)
}

/// Deletes what is due, at most `max_batches` batches (all of it when `None`). The result says
/// per table what was purged and what is still kept, and whether everything due was reached.
pub fn purge_due(
    client: &mut SpiClient<'_>,
    max_batches: Option<i64>,
) -> ExtResult<serde_json::Value> {
    let map = datamap::active(client)?;
    let max_rows = guc::PURGE_BATCH_ROWS.get().max(1) as i64;
    let budget_ms = f64::from(guc::PURGE_BATCH_MS.get().max(1));
    let mut tables: BTreeMap<String, PurgeCounts> = BTreeMap::new();
    let mut batches: i64 = 0;
    let mut complete = true;
    'tables: for index in due_tables(client, &map.map.delete_order)? {
        let table = &map.map.delete_order[index];
        let spec = map.map.table(table);
        let counts = tables.entry(table.clone()).or_default();
        // PostgreSQL's per-row checks of the foreign keys into the table are left out of each
        // batch, and checked once over the keys it deleted (see `delete_checks`).
        let links = erasure_core::plan::links_into(&map.map, table);
        let check = erasure_core::statements::keys_check(&links)
            .filter(|_| super::delete_checks::enabled())
            .map(|sql| {
                prepared(
                    client,
                    StatementId::PurgeCheck {
                        map_id: map.id,
                        table: index,
                    },
                    || sql,
                    || vec![PgOid::from(pg_sys::INT8ARRAYOID)],
                )
            })
            .transpose()?;
        for pass in [PurgePass::Dated, PurgePass::Undated] {
            let stmt = prepared(
                client,
                StatementId::Purge {
                    map_id: map.id,
                    table: index,
                    pass,
                },
                || batch_sql(table, &spec.key, pass, !links.is_empty()),
                || {
                    let mut t = vec![PgOid::from(pg_sys::INT8OID)];
                    if pass == PurgePass::Dated {
                        t.push(PgOid::from(pg_sys::TIMESTAMPTZOID));
                    }
                    t.push(PgOid::from(pg_sys::INT8OID));
                    t
                },
            )?;
            // Before every row of the index range.
            let mut after_until = TimestampWithTimeZone::negative_infinity();
            let mut after_id = i64::MIN;
            loop {
                if max_batches.is_some_and(|m| batches >= m) {
                    complete = false;
                    break 'tables;
                }
                let sizer_key = (map.id, index);
                let sizer =
                    SIZERS.with(|s| s.borrow().get(&sizer_key).copied().unwrap_or_default());
                let rows = sizer.next(budget_ms, max_rows);
                let mut args: Vec<DatumWithOid> = vec![rows.into()];
                if pass == PurgePass::Dated {
                    args.push(after_until.into());
                }
                args.push(after_id.into());
                let started = Instant::now();
                let row = match &check {
                    Some(_) => super::delete_checks::without_row_checks(&links, || {
                        run(client, &stmt, &args)
                    })?,
                    None => run(client, &stmt, &args)?,
                }
                .first();
                let read = row.get::<i64>(1)?.unwrap_or(0);
                let deleted = row.get::<i64>(2)?.unwrap_or(0);
                if let (Some(check), true) = (&check, deleted > 0) {
                    let keys: Vec<i64> = row.get(6)?.unwrap_or_default();
                    let failed: i32 =
                        first_value(run(client, check, &[keys.into()])?)?.unwrap_or(0);
                    if failed > 0 {
                        let link = &links[failed as usize - 1];
                        return Err(super::delete_checks::still_referenced(link, table, "purge"));
                    }
                }
                counts.purged += deleted;
                if read > 0 {
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    SIZERS.with(|s| {
                        s.borrow_mut()
                            .entry(sizer_key)
                            .or_default()
                            .observe(deleted, ms)
                    });
                }
                // A probe that found nothing due is no batch (and holds no row lock); it ends
                // the pass, since chunk sizes vary and a short batch proves nothing.
                if read == 0 {
                    break;
                }
                batches += 1;
                if let Some(u) = row.get::<TimestampWithTimeZone>(4)? {
                    after_until = u;
                }
                after_id = row.get::<i64>(5)?.unwrap_or(i64::MAX);
            }
        }
    }
    if complete {
        // What the ledger still keeps, per table, in one statement.
        for row in client.select(
            "SELECT table_name, sum(row_count)::bigint FROM erasure.ledger_chunks GROUP BY table_name",
            None,
            &[],
        )? {
            if let Some(table) = row.get::<String>(1)? {
                tables.entry(table).or_default().still_held = row.get::<i64>(2)?;
            }
        }
    }
    // A limited call that stopped reports what it purged; what is still kept only a complete
    // call reports.
    tables.retain(|_, c| c.purged > 0 || c.still_held.unwrap_or(0) > 0);
    let total: i64 = tables.values().map(|c| c.purged).sum();
    if total > 0 || complete {
        client.update(
            "INSERT INTO erasure.audit_log (event, detail) VALUES ('purge_due', jsonb_build_object('purged', $1::bigint, 'complete', $2))",
            None,
            &[total.into(), complete.into()],
        )?;
    }
    Ok(
        serde_json::json!({"tables": tables, "purged": total, "batches": batches, "complete": complete}),
    )
}
