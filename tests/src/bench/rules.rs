//! Rule evaluation alone, through the same host crate the extension embeds: nanoseconds per
//! record decision in batches, the per-call overhead, and module load times (precompiled native
//! code vs compiling the WebAssembly). Beside each batch call, the module's own code runs
//! natively on the same input: a yardstick of how fast the machine ran at that moment.

use std::time::Instant;

use erasure_abi::{Decision, EvalInput, Record, Timestamp, ABI_VERSION};
use erasure_rule_host::{Limits, RecordBatch, RuleHost};
use postgres::Client;
use serde_json::{json, Value};

use super::util::{ensure, f2, progress, round3, summarize, Table, R};

/// The limits the extension applies by default (GUCs erasure.module_fuel, module_memory_mb,
/// module_output_mb).
fn engine_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 16 << 20,
        output_bytes: 16 << 20,
    }
}

/// The retention module and its EU GDPR config: the built files if present, else the module
/// active in the database.
fn module(c: &mut Client) -> R<(Vec<u8>, Value, &'static str)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = std::fs::read(root.join("target/modules/retention.wasm"));
    let config = std::fs::read_to_string(root.join("policies/retention/eu-gdpr.json"));
    if let (Ok(w), Ok(cfg)) = (wasm, config) {
        return Ok((
            w,
            serde_json::from_str(&cfg)?,
            "target/modules/retention.wasm + policies/retention/eu-gdpr.json",
        ));
    }
    let row = c.query_one(
        "SELECT wasm, config FROM erasure.modules WHERE slot = 'retention' AND active",
        &[],
    )?;
    Ok((
        row.get(0),
        row.get(1),
        "erasure.modules (active retention module)",
    ))
}

fn input(config: &Value, now: &str, records: Vec<Record>) -> EvalInput {
    EvalInput {
        abi: ABI_VERSION,
        slot: "retention".into(),
        now: now.to_owned(),
        config: config.clone(),
        request: json!({"request_id": 1, "subject_kind": "org", "org_id": 1, "source": "bench"}),
        holds: vec![],
        records,
    }
}

/// Groups the timed batch calls are split into (see `measure`).
const CALL_GROUPS: usize = 5;

/// Median milliseconds of `reps` runs of `f`, each timed with dropping what it returned.
fn time_ms<T>(reps: usize, f: impl FnMut() -> R<T>) -> R<(f64, Vec<f64>)> {
    timed(reps, false, f)
}

/// Median milliseconds of `reps` module loads. Every module loaded is kept until the last load
/// is timed, as a backend keeps its modules: unloading one (unmapping its code, about 0.1 ms)
/// happens when the backend exits, and is no part of loading it.
fn time_loads<T>(reps: usize, load: impl FnMut() -> R<T>) -> R<(f64, Vec<f64>)> {
    timed(reps, true, load)
}

fn timed<T>(reps: usize, keep: bool, mut f: impl FnMut() -> R<T>) -> R<(f64, Vec<f64>)> {
    let mut v = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        let out = f()?;
        if keep {
            v.push(t0.elapsed().as_secs_f64() * 1e3);
            kept.push(out);
        } else {
            drop(out);
            v.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    drop(kept);
    Ok((summarize(&v).median, v))
}

/// Module loads in new backends, as a connection's first request meets them: each new
/// connection previews a contact's erasure (which loads both active modules), in turn with
/// `erasure.module_files` on (native code from the files the data directory keeps) and off
/// (read from `erasure.modules`). The extension's DEBUG1 line of each load gives its time,
/// from the query for the module to its being ready to instantiate, and where the code came
/// from.
fn backend_loads(db: &str, admin: &mut Client, backends: usize) -> R<Value> {
    let subject: String = admin
        .query_one("SELECT 'contact:' || min(id) FROM contacts", &[])?
        .get(0);
    // (module_files, slot, source) -> times
    let mut loads: std::collections::BTreeMap<(bool, String, String), Vec<f64>> =
        Default::default();
    for i in 0..backends * 2 {
        let files = i % 2 == 0;
        let (mut c, messages) = erasure_tests::connect_with_messages(db)?;
        c.batch_execute(&format!(
            "SET client_min_messages = debug1; SET erasure.module_files = {files}"
        ))?;
        c.query_one(
            "SELECT erasure.preview_erasure($1) IS NOT NULL",
            &[&subject],
        )?;
        drop(c);
        let messages = messages.lock().map(|m| m.clone()).unwrap_or_default();
        let found: Vec<_> = messages
            .iter()
            .filter_map(|m| erasure_tests::ModuleLoad::parse(m))
            .collect();
        ensure(found.len() == 2, || {
            format!(
                "a new backend logged {} module loads, not 2: {messages:?}",
                found.len()
            )
        })?;
        for load in found {
            loads
                .entry((files, load.slot, load.source))
                .or_default()
                .push(load.ms);
        }
    }
    let groups: Vec<Value> = loads
        .iter()
        .map(|((files, slot, source), ms)| {
            json!({
                "module_files": files, "slot": slot, "source": source,
                "ms_median": round3(summarize(ms).median),
                "ms_all": ms.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({
        "method": "new connections in turn, each previewing a contact's erasure (both active modules loaded) with erasure.module_files on, then off; times from the extension's DEBUG1 line of each load (the query for the module to its being ready to instantiate; the backend's wasmtime engine, made once per backend, not included)",
        "backends_per_setting": backends,
        "groups": groups,
    });
    for (files, source, key) in LOAD_SOURCES {
        for slot in SLOTS {
            out[load_key(slot, key)] = loads
                .get(&(files, slot.to_owned(), source.to_owned()))
                .map_or(Value::Null, |ms| json!(round3(summarize(ms).median)));
        }
    }
    Ok(out)
}

/// The slots whose modules a request loads.
const SLOTS: [&str; 2] = ["retention", "legal_hold"];

/// With `erasure.module_files` on or off: where the extension says a module's code came from
/// (`engine::rules::load`), and the key of its medians.
const LOAD_SOURCES: [(bool, &str, &str); 2] = [
    (true, "its file", "from_file"),
    (false, "erasure.modules", "from_table"),
];

/// `<slot>_<from_file|from_table>_ms_median` in the results.
fn load_key(slot: &str, key: &str) -> String {
    format!("{slot}_{key}_ms_median")
}

pub fn measure(db: &str, c: &mut Client, batch: usize, calls: usize, load_reps: usize) -> R<Value> {
    let (wasm, config, source) = module(c)?;
    let now_s: i64 = c
        .query_one(
            "SELECT extract(epoch FROM date_trunc('second', now()))::bigint",
            &[],
        )?
        .get(0);
    let now = Timestamp::from_unix_seconds(now_s).to_rfc3339();

    let t0 = Instant::now();
    let host = RuleHost::new()?;
    let host_new_ms = t0.elapsed().as_secs_f64() * 1e3;
    // Installation (validate, compile, smoke-test, serialise): at least once, for its output.
    let mut prepared = None;
    let (prepare_ms, _) = time_ms(load_reps.max(1), || {
        prepared = Some(host.prepare(&wasm, &config, "retention", &Limits::default())?);
        Ok(())
    })?;
    let prepared = prepared.expect("prepared at least once");
    // `--load-reps 0` skips compiling again (debug builds compile very slowly).
    let (compile_ms, compile_all) = if load_reps > 0 {
        time_loads(load_reps, || Ok(host.load_wasm(&wasm)?))?
    } else {
        (f64::NAN, Vec::new())
    };
    // SAFETY: the bytes are `prepare`'s own output from this process, unaltered.
    let (precompiled_ms, pre_all) = time_loads((load_reps * 4).max(4), || {
        Ok(unsafe { host.load_precompiled(&prepared.precompiled)? })
    })?;
    progress(&format!(
        "rule module: compile {compile_ms:.1} ms, precompiled load {precompiled_ms:.3} ms"
    ));
    let new_backends = backend_loads(db, c, load_reps.max(1) * 2)?;
    progress(&format!(
        "rule modules in a new backend: retention {} ms from its file, {} ms from erasure.modules",
        new_backends["retention_from_file_ms_median"],
        new_backends["retention_from_table_ms_median"]
    ));
    let module = unsafe { host.load_precompiled(&prepared.precompiled)? };
    let limits = engine_limits();

    // Invoices issued over the last ten years: about 30% are past the 7-year period (erase),
    // the rest are retained.
    let records = Record::invoice_batch(now_s, batch);
    let big = input(&config, &now, records);
    // What is timed: a batch call as the extension makes it, from the rows' dates (what it
    // reads from the invoices) to the decisions, the records written into the batch first.
    let head = input(&config, &now, Vec::new());
    let issued = Record::invoice_issued_micros(now_s, batch);
    let evaluate_rows = || -> R<Vec<Decision>> {
        let records = RecordBatch::invoices(&issued);
        Ok(host.evaluate_batch(&module, &head, &records, &limits)?)
    };
    let decisions = evaluate_rows()?;
    ensure(host.evaluate(&module, &big, &limits)? == decisions, || {
        "the module decided differently on the records as maps".to_string()
    })?;
    ensure(decisions.len() == batch, || {
        format!(
            "rule module answered {} decisions for {batch} records",
            decisions.len()
        )
    })?;
    let erase = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Erase))
        .count();
    let retain = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Retain { .. }))
        .count();
    ensure(erase + retain == batch && erase > 0 && retain > 0, || {
        format!("rule module: {erase} erase + {retain} retain of {batch} invoices")
    })?;
    // The yardstick: the same module's code compiled natively, on the same input bytes (the
    // host writes exactly what serde_json writes). It must decide alike.
    let input_json = serde_json::to_vec(&big)?;
    let mut native_out = Vec::new();
    ensure(
        erasure_rule_retention::fast::evaluate_json(&input_json, &mut native_out),
        || "the retention module's native fast path declined the bench input".to_string(),
    )?;
    ensure(
        erasure_abi::decode_output(&native_out, batch)? == decisions,
        || "the retention module decided differently natively and in wasm".to_string(),
    )?;
    // The calls in groups half a second apart: the machine's neighbours load it in bursts, and
    // one burst should not decide the figure. Each wasm call follows a native one, so both
    // see the machine in the same state.
    let mut batch_all = Vec::new();
    let mut native_all = Vec::new();
    let mut pair_ratios = Vec::new();
    let groups_of_calls = CALL_GROUPS.min(calls);
    for g in 0..groups_of_calls {
        if g > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let n = calls * (g + 1) / groups_of_calls - calls * g / groups_of_calls;
        for _ in 0..n {
            let (native_ms, _) = time_ms(1, || {
                native_out.clear();
                Ok(erasure_rule_retention::fast::evaluate_json(
                    &input_json,
                    &mut native_out,
                ))
            })?;
            let (wasm_ms, _) = time_ms(1, &evaluate_rows)?;
            native_all.push(native_ms);
            batch_all.push(wasm_ms);
            pair_ratios.push(wasm_ms / native_ms);
        }
    }
    let batch_ms = summarize(&batch_all).median;
    let ns_per_record = batch_ms * 1e6 / batch as f64;
    // The slowest call among the fastest tenth: what the module does when the machine is quiet.
    let fastest_tenth_ns = {
        let mut sorted = batch_all.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[(sorted.len() - 1) / 10] * 1e6 / batch as f64
    };
    let native_ns_per_record = summarize(&native_all).median * 1e6 / batch as f64;
    let over_native = summarize(&pair_ratios).median;

    let one = input(
        &config,
        &now,
        vec![Record {
            table: "invoices".into(),
            category: "invoice".into(),
            attrs: big.records[0].attrs.clone(),
            group: false,
        }],
    );
    let (one_ms, _) = time_ms(calls * 5, || Ok(host.evaluate(&module, &one, &limits)?))?;
    // What a contact erasure asks: one group record per table, categories from the data map.
    let map: Value = c
        .query_one("SELECT map FROM erasure.data_map WHERE active", &[])?
        .get(0);
    let groups = input(
        &config,
        &now,
        super::subjects::CONTACT_TABLES
            .iter()
            .map(|t| Record {
                table: (*t).into(),
                category: map["tables"][*t]["category"].as_str().unwrap_or(t).into(),
                attrs: Default::default(),
                group: true,
            })
            .collect(),
    );
    let (group_ms, _) = time_ms(calls * 5, || Ok(host.evaluate(&module, &groups, &limits)?))?;
    progress(&format!(
        "rule evaluation: {ns_per_record:.0} ns/record in batches of {batch}, {:.1} µs per 1-record call",
        one_ms * 1e3
    ));
    Ok(json!({
        "module_source": source,
        "wasm_bytes": wasm.len(),
        "precompiled_bytes": prepared.precompiled.len(),
        "limits": {"fuel": limits.fuel, "memory_bytes": limits.memory_bytes, "output_bytes": limits.output_bytes},
        "host_new_ms": round3(host_new_ms),
        "prepare_ms_median": round3(prepare_ms),
        "load_compile_ms_median": if compile_ms.is_finite() { json!(round3(compile_ms)) } else { Value::Null },
        "load_compile_ms_all": compile_all.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
        "load_precompiled_ms_median": round3(precompiled_ms),
        "load_precompiled_ms_all": pre_all.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
        "load_timing": "each load timed until the module is ready to instantiate; the loaded modules are kept until every load is timed (a backend keeps its modules, and unloads them when it exits)",
        "new_backend_loads": new_backends,
        "compile_over_precompiled": if compile_ms.is_finite() { json!(round3(compile_ms / precompiled_ms)) } else { Value::Null },
        "batch_records": batch,
        "batch_calls": calls,
        "batch_call_groups": groups_of_calls,
        "batch_call_groups_apart_ms": 500,
        "batch_call_timing": "one batch call as the extension makes it: the invoices' records written from their dates into a RecordBatch (as the extension writes a row's timestamptz attribute), then evaluate_batch to the decoded decisions, dropped inside the timing",
        "batch_call_ms_median": round3(batch_ms),
        "batch_call_ms_all": batch_all.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
        "ns_per_record": round3(ns_per_record),
        "ns_per_record_fastest_tenth": round3(fastest_tenth_ns),
        "native_ns_per_record": round3(native_ns_per_record),
        "native_call_ms_all": native_all.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
        "evaluate_over_native": round3(over_native),
        "native_reference": "the retention module's fast path compiled natively (no sandbox, no JSON written or read by the host) on the same input bytes, one call before each wasm call; evaluate_over_native is the median of the per-pair ratios",
        "decisions_in_batch": {"erase": erase, "retain": retain},
        "one_record_call_us_median": round3(one_ms * 1e3),
        "contact_group_call_us_median": round3(group_ms * 1e3),
        "contact_group_records": groups.records.len(),
    }))
}

pub fn table(v: &Value) -> Table {
    let mut t = Table::new(
        "Rule evaluation alone (retention module, eu-gdpr, host crate in this process)",
        &["measure", "value"],
    );
    let g = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    t.row(vec![
        format!("ns per record (batches of {})", v["batch_records"]),
        format!("{:.0}", g("ns_per_record")),
    ]);
    t.row(vec![
        "ns per record, slowest of the fastest tenth of calls".into(),
        format!("{:.0}", g("ns_per_record_fastest_tenth")),
    ]);
    t.row(vec![
        "ns per record, the same code natively (interleaved calls)".into(),
        format!("{:.0}", g("native_ns_per_record")),
    ]);
    t.row(vec![
        "wasm evaluate ÷ native (median of call pairs)".into(),
        f2(g("evaluate_over_native")),
    ]);
    t.row(vec![
        format!(
            "ms per batch call (median of {} calls in {} groups)",
            v["batch_calls"], v["batch_call_groups"]
        ),
        f2(g("batch_call_ms_median")),
    ]);
    t.row(vec![
        "µs per 1-record call (median)".into(),
        f2(g("one_record_call_us_median")),
    ]);
    t.row(vec![
        format!(
            "µs per contact call ({} group records)",
            v["contact_group_records"]
        ),
        f2(g("contact_group_call_us_median")),
    ]);
    let loads = &v["new_backend_loads"];
    for (_, source, key) in LOAD_SOURCES {
        let ms: Vec<String> = SLOTS
            .iter()
            .map(|slot| {
                loads[load_key(slot, key)]
                    .as_f64()
                    .map_or("-".into(), |x| format!("{x:.3}"))
            })
            .collect();
        t.row(vec![
            format!(
                "module load in a new backend, from {source}: {} (ms, median)",
                SLOTS.join(" / ")
            ),
            ms.join(" / "),
        ]);
    }
    t.row(vec![
        "module load, precompiled bytes in this process (ms, median)".into(),
        format!("{:.3}", g("load_precompiled_ms_median")),
    ]);
    t.row(vec![
        "module load, compile wasm (ms, median)".into(),
        f2(g("load_compile_ms_median")),
    ]);
    t.row(vec![
        "compile / precompiled".into(),
        if g("compile_over_precompiled").is_finite() {
            format!("{:.0}x", g("compile_over_precompiled"))
        } else {
            "-".into()
        },
    ]);
    t.row(vec![
        "install-time prepare (ms, median)".into(),
        f2(g("prepare_ms_median")),
    ]);
    t.note(format!(
        "module: {} ({} bytes wasm, {} bytes precompiled)",
        v["module_source"].as_str().unwrap_or(""),
        v["wasm_bytes"],
        v["precompiled_bytes"]
    ));
    t
}
