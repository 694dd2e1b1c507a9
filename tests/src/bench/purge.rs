//! `erasure.purge_due()` against a plain batched delete loop. A retention config that keeps
//! messages, media, conversations, contacts, the organization, invoices and audit rows for a
//! day is installed; two organizations of the same shape are erased under it (their kept rows
//! land in the ledger); one organization's ledger rows are made due and purged by the engine;
//! the other's kept rows are deleted by `DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... LIMIT
//! batch))` loops, leaf first, in one transaction like purge_due's. The default modules are
//! re-installed afterwards.

use std::collections::BTreeMap;
use std::time::Instant;

use postgres::Client;
use serde_json::{json, Value};

use super::contact::Engine;
use super::memory;
use super::orgs::{backend_pid, org_rows, ORG_TABLES};
use super::util::{ensure, int, progress, ratio, round3, session, Table, R};

const BENCH_CONFIG: &str = r#"{"regime":"bench","default":{"action":"erase"},"categories":{
 "message":{"action":"retain","period":"P1D","basis":"bench"},
 "media":{"action":"retain","period":"P1D","basis":"bench"},
 "conversation":{"action":"retain","period":"P1D","basis":"bench"},
 "contact":{"action":"retain","period":"P1D","basis":"bench"},
 "organization":{"action":"retain","period":"P1D","basis":"bench"},
 "invoice":{"action":"retain","period":"P1D","basis":"bench"},
 "audit":{"action":"retain","period":"P1D","basis":"bench"}}}"#;

fn ledger_by_table(c: &mut Client, request: i64) -> R<BTreeMap<String, i64>> {
    Ok(c.query(
        "SELECT table_name, count(*) FROM erasure.ledger WHERE request_id = $1 GROUP BY 1",
        &[&request],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

fn active_retention(c: &mut Client) -> R<String> {
    Ok(c.query_one(
        "SELECT sha256 FROM erasure.modules WHERE slot = 'retention' AND active",
        &[],
    )?
    .get(0))
}

struct Kept {
    request: i64,
    ledger: BTreeMap<String, i64>,
    seconds: f64,
    memory: Value,
    rows_before: i64,
}

/// Erases `org` under the bench config; the ledger rows it left, checked against the rows left.
fn erase_keeping(engine: &mut Engine, admin: &mut Client, org: i64, sha: &str) -> R<Kept> {
    let before = org_rows(admin, org)?;
    super::util::checkpoint(admin)?;
    let watch = memory::start(backend_pid(&mut engine.client)?);
    let t0 = Instant::now();
    let report = engine.erase(&format!("org:{org}"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let memory = watch.finish(
        &format!("pg_erasure, org {org} under the bench retention config"),
        before.total(),
    );
    ensure(report["modules"]["retention"] == sha, || {
        format!(
            "org {org} was decided by retention module {}, not the bench config {sha}",
            report["modules"]["retention"]
        )
    })?;
    let request = report["request_id"].as_i64().unwrap_or(0);
    let ledger = ledger_by_table(admin, request)?;
    let after = org_rows(admin, org)?;
    for (i, t) in ORG_TABLES.iter().enumerate() {
        let l = ledger.get(*t).copied().unwrap_or(0);
        ensure(after.rows[i] == l, || {
            format!(
                "org {org}: {t} has {} rows left but {l} ledger rows",
                after.rows[i]
            )
        })?;
    }
    Ok(Kept {
        request,
        ledger,
        seconds,
        memory,
        rows_before: before.total(),
    })
}

pub fn measure(
    db: &str,
    engine: &mut Engine,
    admin: &mut Client,
    p_org: i64,
    b_org: i64,
) -> R<(Value, Vec<Value>)> {
    let default_sha = active_retention(admin)?;
    let sha: String = admin
        .query_one(
            "SELECT erasure.install_module('retention',
                (SELECT wasm FROM erasure.modules WHERE slot = 'retention' AND active), $1::text::jsonb)",
            &[&BENCH_CONFIG],
        )?
        .get(0);
    admin.execute("SELECT erasure.activate_module('retention', $1)", &[&sha])?;

    let p = erase_keeping(engine, admin, p_org, &sha)?;
    let b = erase_keeping(engine, admin, b_org, &sha)?;
    let p_total: i64 = p.ledger.values().sum();
    let b_total: i64 = b.ledger.values().sum();
    progress(&format!(
        "purge: orgs erased under the bench config, {p_total} and {b_total} ledger rows ({:.2} s, {:.2} s)",
        p.seconds, b.seconds
    ));

    admin.execute(
        "UPDATE erasure.ledger_chunks SET until = now() - interval '1 second' WHERE request_id = $1",
        &[&p.request],
    )?;
    let due: i64 = admin
        .query_one(
            "SELECT count(*) FROM erasure.ledger WHERE until <= now()",
            &[],
        )?
        .get(0);
    ensure(due == p_total, || {
        format!("purge: {due} ledger rows due, expected {p_total}")
    })?;
    let batch: String = engine
        .client
        .query_one("SHOW erasure.purge_batch_rows", &[])?
        .get(0);
    let batch: i64 = batch.parse()?;
    let batch_ms: String = engine
        .client
        .query_one("SHOW erasure.purge_batch_ms", &[])?
        .get(0);

    // The engine: one batch per transaction, as `CALL erasure.purge_due_in_batches()` runs it,
    // each call timed, so the longest is the longest any row lock was held.
    super::util::checkpoint(admin)?;
    // As the procedure does: each batch commits without waiting for its WAL flush.
    engine
        .client
        .batch_execute("SET synchronous_commit = off")?;
    let stmt = engine.client.prepare("SELECT erasure.purge_due(1)")?;
    let mut purged: i64 = 0;
    let mut batches: i64 = 0;
    let mut calls: i64 = 0;
    let mut engine_longest_ms: f64 = 0.0;
    // Every call's time and what it purged, for the longest ones in the results.
    let mut call_ms: Vec<(f64, Value)> = Vec::new();
    let t0 = Instant::now();
    loop {
        let s0 = Instant::now();
        let out: Value = engine.client.query_one(&stmt, &[])?.get(0);
        let ms = s0.elapsed().as_secs_f64() * 1e3;
        engine_longest_ms = engine_longest_ms.max(ms);
        call_ms.push((ms, out["tables"].clone()));
        calls += 1;
        purged += out["purged"].as_i64().unwrap_or(0);
        batches += out["batches"].as_i64().unwrap_or(0);
        if out["complete"] == true {
            break;
        }
        ensure(calls <= p_total + 100, || {
            format!("purge_due(1) called {calls} times without completing: {out}")
        })?;
    }
    let engine_s = t0.elapsed().as_secs_f64();
    engine.client.batch_execute("RESET synchronous_commit")?;
    let working_batches = batches;
    let out = json!({"calls": calls, "purged": purged, "batches": batches});
    ensure(purged == p_total, || {
        format!("purge_due purged {purged}, {p_total} were due: {out}")
    })?;
    let left = org_rows(admin, p_org)?.total();
    ensure(left == 0, || {
        format!("purge_due left {left} rows of org {p_org}")
    })?;
    let ledger_left = ledger_by_table(admin, p.request)?.values().sum::<i64>();
    ensure(ledger_left == 0, || {
        format!("purge_due left {ledger_left} ledger rows of org {p_org}")
    })?;
    progress(&format!(
        "purge_due: {purged} rows in {engine_s:.2} s, {batches} batches"
    ));

    // The baseline: the same tables' rows of the other org, leaf first, ctid batches.
    let mut base = session(db, "purge:baseline", None)?;
    let mut stmts = Vec::new();
    for t in ORG_TABLES.iter().filter(|t| b.ledger.contains_key(**t)) {
        let col = if *t == "organizations" {
            "id"
        } else {
            "org_id"
        };
        stmts.push((
            *t,
            base.prepare(&format!(
                "DELETE FROM public.{t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM public.{t} WHERE {col} = $1 LIMIT $2))"
            ))?,
        ));
    }
    let mut deleted: BTreeMap<String, i64> = BTreeMap::new();
    let mut base_batches = 0;
    let mut base_working: i64 = 0;
    let mut longest_ms: f64 = 0.0;
    super::util::checkpoint(admin)?;
    let t0 = Instant::now();
    let mut tx = base.transaction()?;
    for (t, stmt) in &stmts {
        loop {
            let s0 = Instant::now();
            let n = tx.execute(stmt, &[&b_org, &batch])? as i64;
            longest_ms = longest_ms.max(s0.elapsed().as_secs_f64() * 1e3);
            base_batches += 1;
            if n > 0 {
                base_working += 1;
            }
            *deleted.entry(t.to_string()).or_default() += n;
            if n < batch {
                break;
            }
        }
    }
    tx.commit()?;
    let base_s = t0.elapsed().as_secs_f64();
    let base_total: i64 = deleted.values().sum();
    ensure(deleted == b.ledger, || {
        format!(
            "baseline deleted {deleted:?}, kept rows were {:?}",
            b.ledger
        )
    })?;
    let left = org_rows(admin, b_org)?.total();
    ensure(left == 0, || {
        format!("baseline left {left} rows of org {b_org}")
    })?;
    progress(&format!(
        "baseline: {base_total} rows in {base_s:.2} s, {base_batches} batches"
    ));

    // Back to the shipped modules.
    admin.batch_execute("SELECT erasure.install_default_modules()")?;
    let restored = active_retention(admin)?;
    ensure(restored == default_sha, || {
        "default retention module not restored".into()
    })?;

    call_ms.sort_by(|a, b| b.0.total_cmp(&a.0));
    let longest_calls: Vec<Value> = call_ms
        .iter()
        .take(5)
        .map(|(ms, tables)| json!({"ms": round3(*ms), "tables": tables}))
        .collect();
    let e_rate = purged as f64 / engine_s;
    let b_rate = base_total as f64 / base_s;
    let v = json!({
        "method": "bench retention config keeps message, media, conversation, contact, organization, invoice and audit rows for P1D; org P erased under it, its ledger rows set due, then SELECT erasure.purge_due(1) called until complete, each call its own transaction with synchronous_commit off (what CALL erasure.purge_due_in_batches() does), every call timed; org B (same shape) erased the same way, its kept rows deleted by ctid batch loops leaf first in one transaction",
        "batch_rows": batch,
        "pg_erasure_batch_ms": batch_ms,
        "pg_erasure": {
            "org": p_org, "rows": purged, "seconds": round3(engine_s), "rows_per_s": round3(e_rate),
            "batches": calls, "mean_ms_per_batch": round3(engine_s * 1e3 / calls.max(1) as f64),
            "working_batches": working_batches,
            "mean_ms_per_working_batch": round3(engine_s * 1e3 / working_batches.max(1) as f64),
            "longest_statement_ms": round3(engine_longest_ms),
            "longest_calls": longest_calls,
            "ledger_rows_per_table": p.ledger,
            "note": "purge_due also deletes the ledger chunks it purges; every batch commits, so no lock outlives its call: longest_statement_ms is the longest lock holding",
        },
        "baseline": {
            "org": b_org, "rows": base_total, "seconds": round3(base_s), "rows_per_s": round3(b_rate),
            "batches": base_batches, "mean_ms_per_batch": round3(base_s * 1e3 / base_batches.max(1) as f64),
            "working_batches": base_working,
            "mean_ms_per_working_batch": round3(base_s * 1e3 / base_working.max(1) as f64),
            "longest_statement_ms": round3(longest_ms),
            "rows_per_table": deleted,
        },
        "ratio_rows_per_s_pg_erasure_over_baseline": ratio(e_rate, b_rate),
        "erasures_under_bench_config": [
            {"org": p_org, "rows_before": p.rows_before, "ledger_rows": p_total, "seconds": round3(p.seconds)},
            {"org": b_org, "rows_before": b.rows_before, "ledger_rows": b_total, "seconds": round3(b.seconds)},
        ],
    });
    Ok((v, vec![p.memory, b.memory]))
}

pub fn table(v: &Value) -> Table {
    let mut t = Table::new(
        &format!(
            "purge_due vs batched ctid delete loop (pg_erasure: batches sized to {} ms, at most {} rows; baseline: {} rows)",
            v["pg_erasure_batch_ms"].as_str().unwrap_or("?"),
            v["batch_rows"],
            v["batch_rows"]
        ),
        &[
            "side",
            "org",
            "rows",
            "batches (with rows)",
            "seconds",
            "rows/s",
            "ms per batch with rows",
            "longest stmt ms",
        ],
    );
    for (side, k) in [
        ("pg_erasure purge_due(1) per transaction", "pg_erasure"),
        ("ctid batch loop", "baseline"),
    ] {
        let s = &v[k];
        t.row(vec![
            side.into(),
            s["org"].to_string(),
            int(s["rows"].as_i64().unwrap_or(0)),
            format!("{} ({})", s["batches"], s["working_batches"]),
            format!("{:.3}", s["seconds"].as_f64().unwrap_or(0.0)),
            int(s["rows_per_s"].as_f64().unwrap_or(0.0) as i64),
            format!(
                "{:.1}",
                s["mean_ms_per_working_batch"].as_f64().unwrap_or(0.0)
            ),
            s["longest_statement_ms"]
                .as_f64()
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "n/a".into()),
        ]);
    }
    t.note(format!(
        "ratio rows/s pg_erasure ÷ baseline: {:.2}; pg_erasure commits after every batch (synchronous_commit off, as purge_due_in_batches does), the baseline once at the end (synchronous_commit at the server default); ms per batch with rows = total ÷ batches that deleted rows",
        v["ratio_rows_per_s_pg_erasure_over_baseline"].as_f64().unwrap_or(f64::NAN)
    ));
    for e in v["erasures_under_bench_config"]
        .as_array()
        .into_iter()
        .flatten()
    {
        t.note(format!(
            "org {} erased under the bench config: {} rows, {} kept in the ledger, {:.2} s",
            e["org"],
            int(e["rows_before"].as_i64().unwrap_or(0)),
            int(e["ledger_rows"].as_i64().unwrap_or(0)),
            e["seconds"].as_f64().unwrap_or(0.0)
        ));
    }
    t
}
