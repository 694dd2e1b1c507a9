//! The bench harness at its tiny `--smoke` scale: it runs end to end against the installed
//! extension, writes its JSON and chart, and every row-count check inside it passes (a failed
//! check aborts the binary with a non-zero status and `checks.passed = false`).

use std::process::Command;

use serde_json::Value;

#[test]
fn bench_runs_at_smoke_scale_and_its_checks_pass() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke");
    let _ = std::fs::remove_dir_all(&out);
    // Its own database name, so a concurrent `make bench-smoke` cannot collide with it; no
    // second compile of the rule module (slow in a debug build, and not what is tested here).
    let status = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--smoke",
            "--db",
            "erasure_bench_smoke_it",
            "--load-reps",
            "0",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("run the bench binary");
    let json = out.join("results.json");
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("{}: {e} (bench exited with {status})", json.display()));
    let r: Value = serde_json::from_str(&text).expect("results.json is JSON");
    assert!(status.success(), "bench failed: {:#}", r["checks"]);
    assert_eq!(r["checks"]["passed"], true, "{:#}", r["checks"]);
    assert_eq!(r["scale"]["smoke"], true);

    // Both runs measured every variant on every subject, each one checked.
    let subjects = r["scale"]["subjects_per_group"].as_u64().unwrap();
    let warmup = r["scale"]["warmup_per_variant"].as_u64().unwrap();
    let runs = r["contact_erasure"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let variants = [
        "floor",
        "cascade",
        "pg_erasure",
        "limit",
        "statements_nofk",
        "lower_bound",
    ];
    for run in runs {
        for v in variants {
            let lat = run["variants"][v]["latencies_ms"].as_array().unwrap();
            assert_eq!(lat.len() as u64, subjects, "{v}");
            assert!(lat.iter().all(|x| x.as_f64().unwrap() > 0.0), "{v}");
            assert!(
                run["variants"][v]["rows_total"].as_i64().unwrap() > 0,
                "{v}"
            );
        }
        assert_eq!(
            run["subjects_checked"].as_u64().unwrap(),
            variants.len() as u64 * (subjects + warmup)
        );
        // floor, cascade and limit erased the very same subjects.
        let rows = |v: &str| run["variants"][v]["rows_per_subject"].clone();
        assert_eq!(rows("floor"), rows("cascade"));
        assert_eq!(rows("floor"), rows("limit"));
        // pg_erasure's statements on crm_nofk and the lower bound on crm_cascade erased
        // pg_erasure's subjects.
        assert_eq!(rows("pg_erasure"), rows("statements_nofk"));
        assert_eq!(rows("pg_erasure"), rows("lower_bound"));
        // The decomposition against cascade has its figures.
        for k in [
            "cascade_deleting",
            "pg_erasure_deleting",
            "lower_bound_deleting",
            "record_keeping",
        ] {
            assert!(run["decomposition_median_ms"][k].is_number(), "{k}");
        }
        assert!(run["cascade_no_data"]["median"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        r["checks"]["contact_erasures_checked"].as_u64().unwrap(),
        2 * variants.len() as u64 * (subjects + warmup)
    );

    // The other measurements produced figures.
    for side in ["pg_erasure", "floor"] {
        let o = &r["org_erasure"]["big"][side];
        assert!(o["work_rows"].as_i64().unwrap() > 0, "{o:#}");
        assert!(o["rows_per_s"].as_f64().unwrap() > 0.0, "{o:#}");
    }
    assert_eq!(
        r["purge"]["pg_erasure"]["rows"],
        r["purge"]["erasures_under_bench_config"][0]["ledger_rows"]
    );
    assert_eq!(
        r["purge"]["baseline"]["rows"],
        r["purge"]["erasures_under_bench_config"][1]["ledger_rows"]
    );
    let rules = &r["rule_evaluation"];
    assert!(rules["ns_per_record"].as_f64().unwrap() > 0.0);
    assert!(
        rules["ns_per_record_fastest_tenth"].as_f64().unwrap()
            <= rules["ns_per_record"].as_f64().unwrap()
    );
    // The native yardstick ran beside every wasm call.
    assert!(rules["native_ns_per_record"].as_f64().unwrap() > 0.0);
    assert!(rules["evaluate_over_native"].as_f64().unwrap() > 0.0);
    assert_eq!(
        rules["native_call_ms_all"].as_array().unwrap().len(),
        rules["batch_call_ms_all"].as_array().unwrap().len()
    );
    // Module loads in new backends: from the files the data directory keeps, and from
    // erasure.modules with erasure.module_files off.
    let loads = &rules["new_backend_loads"];
    for key in [
        "retention_from_file_ms_median",
        "legal_hold_from_file_ms_median",
        "retention_from_table_ms_median",
        "legal_hold_from_table_ms_median",
    ] {
        assert!(loads[key].as_f64().unwrap() > 0.0, "{key}: {loads:#}");
    }
    assert_eq!(r["concurrency"]["runs"].as_array().unwrap().len(), 2);
    for run in r["concurrency"]["runs"].as_array().unwrap() {
        // pg_erasure, the floor, the floor in one call and the CPU-only reference at 1, 2
        // and 4 clients.
        assert_eq!(run["levels"].as_array().unwrap().len(), 12, "{run:#}");
        assert!(run["floor_one_call_scaling_4_over_1"].as_f64().unwrap() > 0.0);
        assert!(run["floor_scaling_4_over_1"].as_f64().unwrap() > 0.0);
        assert!(run["reference_scaling_4_over_1"].as_f64().unwrap() > 0.0);
        assert!(run["reference_rows"].as_i64().unwrap() >= 1000);
    }
    assert!(r["memory"]["points"].as_array().unwrap().len() >= 2);

    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(svg.starts_with("<svg") && svg.contains("pg_erasure") && svg.contains("polyline"));
}
