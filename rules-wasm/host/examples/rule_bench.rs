//! The rule section of `make bench` (tests/src/bench/rules.rs) without PostgreSQL: the same
//! module, config, records, limits, repetitions and medians, so the host and the guests can be
//! measured on their own.
//!
//! ```text
//! make modules
//! cargo run --release -p erasure-rule-host --example rule_bench -- [options]
//!   --wasm PATH      module (target/modules/retention.wasm)
//!   --config PATH    configuration (policies/retention/eu-gdpr.json)
//!   --batch N        records per call (5000)
//!   --calls N        timed calls (20)
//!   --load-reps N    prepare and compile repetitions; precompiled loads are max(4N, 4) (5)
//!   --evaluate-only  skip the load measurements (for profiling the call)
//!   --quick          prepare once and skip timing the compile; still 20 precompiled loads
//!   --repeat N       run the timed calls N times over (for profiling)
//!   --save PATH      write the precompiled bytes to PATH
//!   --load-once PATH load precompiled bytes from PATH once and print the time (a fresh process)
//!   --compare PATH.. after the usual run, these modules and `--wasm` measured in turns (one
//!                    load or call of each in a round), so a noisy machine slows all alike
//! ```

use std::time::Instant;

use erasure_abi::{Decision, EvalInput, Record, Timestamp, ABI_VERSION};
use erasure_rule_host::{Limits, RuleHost};
use serde_json::{json, Value};

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Median milliseconds of `reps` runs of `f`, and every run.
fn time_ms<T>(reps: usize, mut f: impl FnMut() -> R<T>) -> R<(f64, Vec<f64>)> {
    let mut v = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        v.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(&v), v))
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

fn main() -> R<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut wasm_path = root.join("target/modules/retention.wasm");
    let mut config_path = root.join("policies/retention/eu-gdpr.json");
    let (mut batch, mut calls, mut load_reps, mut repeat) = (5000usize, 20usize, 5usize, 1usize);
    let (mut evaluate_only, mut quick, mut save, mut load_once) = (false, false, None, None);
    let mut compare: Vec<std::path::PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--wasm" => wasm_path = value()?.into(),
            "--config" => config_path = value()?.into(),
            "--batch" => batch = value()?.parse()?,
            "--calls" => calls = value()?.parse()?,
            "--load-reps" => load_reps = value()?.parse()?,
            "--repeat" => repeat = value()?.parse()?,
            "--evaluate-only" => evaluate_only = true,
            "--quick" => quick = true,
            "--save" => save = Some(value()?),
            "--load-once" => load_once = Some(value()?),
            "--compare" => compare.push(value()?.into()),
            other => return Err(format!("unknown option {other}").into()),
        }
    }

    if let Some(path) = load_once {
        let bytes = std::fs::read(path)?;
        let t0 = Instant::now();
        let host = RuleHost::new()?;
        let host_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        // SAFETY: the file is `--save` output of this example, i.e. `prepare`'s own bytes.
        let _module = unsafe { host.load_precompiled(&bytes)? };
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        // SAFETY: as above.
        let _module = unsafe { host.load_precompiled(&bytes)? };
        let again_ms = t0.elapsed().as_secs_f64() * 1e3;
        println!("fresh process: RuleHost::new {host_ms:.3} ms, first precompiled load {load_ms:.3} ms, second {again_ms:.3} ms");
        return Ok(());
    }

    let wasm = std::fs::read(&wasm_path)?;
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let now = Timestamp::from_unix_seconds(now_s).to_rfc3339();

    let host = RuleHost::new()?;
    let mut prepared = None;
    let pre_reps = (load_reps * 4).max(4);
    if quick {
        load_reps = 0;
    }
    let (prepare_ms, _) = time_ms(load_reps.max(1), || {
        prepared = Some(host.prepare(&wasm, &config, "retention", &Limits::default())?);
        Ok(())
    })?;
    let prepared = prepared.expect("prepared at least once");
    if let Some(path) = save {
        std::fs::write(path, &prepared.precompiled)?;
    }
    if !evaluate_only {
        let (compile_ms, _) = if load_reps > 0 {
            time_ms(load_reps, || Ok(host.load_wasm(&wasm)?))?
        } else {
            (f64::NAN, Vec::new())
        };
        // SAFETY: the bytes are `prepare`'s own output from this process, unaltered.
        let (pre_ms, pre_all) = time_ms(pre_reps, || {
            Ok(unsafe { host.load_precompiled(&prepared.precompiled)? })
        })?;
        println!(
            "wasm {} B, precompiled {} B; prepare {prepare_ms:.1} ms, compile {compile_ms:.1} ms",
            wasm.len(),
            prepared.precompiled.len()
        );
        println!(
            "precompiled load: median {pre_ms:.3} ms over {} runs {:?}",
            pre_all.len(),
            pre_all
                .iter()
                .map(|x| (x * 1e3).round() / 1e3)
                .collect::<Vec<_>>()
        );
    }
    // SAFETY: as above.
    let module = unsafe { host.load_precompiled(&prepared.precompiled)? };
    let limits = Limits {
        fuel: 200_000_000,
        memory_bytes: 16 << 20,
        output_bytes: 16 << 20,
    };

    // As the bench: invoices over ten years, ~30% past the 7-year period.
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
    let decisions = host.evaluate(&module, &big, &limits)?;
    let erase = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Erase))
        .count();
    let retain = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Retain { .. }))
        .count();
    assert!(decisions.len() == batch && erase + retain == batch && erase > 0 && retain > 0);
    for _ in 0..repeat {
        let (batch_ms, all) = time_ms(calls, || Ok(host.evaluate(&module, &big, &limits)?))?;
        println!(
            "evaluate: {:.1} ns/record (median call {batch_ms:.3} ms over {calls} calls of {batch}; min {:.3} ms; {erase} erase, {retain} retain)",
            batch_ms * 1e6 / batch as f64,
            all.iter().cloned().fold(f64::INFINITY, f64::min)
        );
    }
    if !compare.is_empty() {
        compare.insert(0, wasm_path.clone());
        let mut loaded = Vec::new();
        for path in &compare {
            let prepared = host.prepare(
                &std::fs::read(path)?,
                &config,
                "retention",
                &Limits::default(),
            )?;
            // SAFETY: as above.
            let module = unsafe { host.load_precompiled(&prepared.precompiled)? };
            loaded.push((prepared.precompiled, module, Vec::new(), Vec::new()));
        }
        for _ in 0..calls.max(20) {
            for (precompiled, module, loads, evals) in loaded.iter_mut() {
                let t0 = Instant::now();
                // SAFETY: as above.
                drop(unsafe { host.load_precompiled(precompiled)? });
                loads.push(t0.elapsed().as_secs_f64() * 1e3);
                let t0 = Instant::now();
                drop(host.evaluate(module, &big, &limits)?);
                evals.push(t0.elapsed().as_secs_f64() * 1e9 / batch as f64);
            }
        }
        for (path, (precompiled, _, loads, evals)) in compare.iter().zip(&loaded) {
            let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
            println!(
                "{:>8} B precompiled: load median {:.3} ms (min {:.3}); evaluate median {:.1} ns/record (min {:.1})  {}",
                precompiled.len(),
                median(loads),
                min(loads),
                median(evals),
                min(evals),
                path.display()
            );
        }
    }
    Ok(())
}
