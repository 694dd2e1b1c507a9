//! Times `RuleHost::evaluate` the way `tests/src/bench/rules.rs` does, without PostgreSQL:
//! the retention module (`target/modules/retention.wasm`, built by `make modules`) with
//! `policies/retention/eu-gdpr.json`, loaded precompiled, the engine's default limits.
//!
//! ```text
//! make modules && cargo run --release -p erasure-rule-host --example eval_timing [batch] [calls]
//! ```
//!
//! Prints ns per record in batches of `batch` (default 5000), µs per 1-record call and per
//! call with the 12 group records of a contact erasure, and the precompiled load time.

use std::time::Instant;

use erasure_abi::{Decision, EvalInput, Record, Timestamp, ABI_VERSION};
use erasure_rule_host::{Limits, RuleHost};
use serde_json::{json, Value};

/// The contact tables of the reference CRM and their data-map categories.
const CONTACT_GROUPS: [(&str, &str); 12] = [
    ("media", "media"),
    ("messages", "message"),
    ("ai_logs", "ai_log"),
    ("ai_prompt_cache", "ai_prompt_cache"),
    ("order_items", "order_item"),
    ("orders", "order"),
    ("reorder_cycles", "reorder_cycle"),
    ("lifecycle_events", "lifecycle"),
    ("contact_labels", "contact_label"),
    ("segment_members", "segment_membership"),
    ("conversations", "conversation"),
    ("contacts", "contact"),
];

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median milliseconds of `reps` runs of `f`.
fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let v = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(v)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map_or(5000, |a| a.parse().expect("batch"));
    let calls: usize = args.next().map_or(20, |a| a.parse().expect("calls"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = std::fs::read(root.join("target/modules/retention.wasm"))
        .expect("target/modules/retention.wasm (run `make modules`)");
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("policies/retention/eu-gdpr.json")).expect("config"),
    )
    .expect("config JSON");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let now = Timestamp::from_unix_seconds(now_s).to_rfc3339();

    let host = RuleHost::new().expect("engine");
    let prepared = host
        .prepare(&wasm, &config, "retention", &Limits::default())
        .expect("prepare");
    // SAFETY: `prepare`'s own output from this process, unaltered.
    let load_ms = time_ms(20, || {
        unsafe { host.load_precompiled(&prepared.precompiled) }.expect("load");
    });
    let module = unsafe { host.load_precompiled(&prepared.precompiled) }.expect("load");
    let limits = Limits {
        fuel: 200_000_000,
        memory_bytes: 16 << 20,
        output_bytes: 16 << 20,
    };

    let span = 3652 * 86_400i64;
    let records: Vec<Record> = (0..batch as i64)
        .map(|i| {
            let issued = now_s - span * i / batch as i64 - 3600;
            let mut attrs = serde_json::Map::new();
            attrs.insert(
                "issued_at".into(),
                json!(Timestamp::from_unix_seconds(issued).to_rfc3339()),
            );
            Record {
                table: "invoices".into(),
                category: "invoice".into(),
                attrs,
                group: false,
            }
        })
        .collect();
    let big = input(&config, &now, records);
    let decisions = host.evaluate(&module, &big, &limits).expect("evaluate");
    let erase = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Erase))
        .count();
    let retain = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Retain { .. }))
        .count();
    assert!(erase + retain == batch && erase > 0 && retain > 0);
    if let Ok(what) = std::env::var("EVAL_TIMING_LOOP") {
        // For `perf record`: repeat one kind of call for about three seconds.
        let one = input(&config, &now, vec![big.records[0].clone()]);
        let which = if what == "one" { &one } else { &big };
        let t0 = Instant::now();
        while t0.elapsed().as_secs() < 3 {
            host.evaluate(&module, which, &limits).expect("evaluate");
        }
        return;
    }
    // The host's share, without the module: decoding an answer like the module's.
    let answer = erasure_abi::encode_output(&erasure_abi::EvalOutput::Decisions(decisions));
    let decode_ms = time_ms(calls, || {
        erasure_abi::decode_output(&answer, batch).expect("decode");
    });
    let batch_ms = time_ms(calls, || {
        host.evaluate(&module, &big, &limits).expect("evaluate");
    });

    let one = input(&config, &now, vec![big.records[0].clone()]);
    let one_ms = time_ms(calls * 50, || {
        host.evaluate(&module, &one, &limits).expect("evaluate");
    });
    let groups = input(
        &config,
        &now,
        CONTACT_GROUPS
            .iter()
            .map(|(table, category)| Record {
                table: table.to_string(),
                category: category.to_string(),
                attrs: Default::default(),
                group: true,
            })
            .collect(),
    );
    let group_ms = time_ms(calls * 50, || {
        host.evaluate(&module, &groups, &limits).expect("evaluate");
    });
    println!(
        "batch {batch}: {:.0} ns/record ({:.3} ms/call, {erase} erase + {retain} retain)",
        batch_ms * 1e6 / batch as f64,
        batch_ms
    );
    println!(
        "  of which decoding the answer ({} bytes): {:.0} ns/record",
        answer.len(),
        decode_ms * 1e6 / batch as f64
    );
    println!("1-record call: {:.1} µs", one_ms * 1e3);
    println!("12-group-record call: {:.1} µs", group_ms * 1e3);
    println!(
        "precompiled load: {load_ms:.3} ms ({} bytes wasm, {} bytes precompiled)",
        wasm.len(),
        prepared.precompiled.len()
    );
}
