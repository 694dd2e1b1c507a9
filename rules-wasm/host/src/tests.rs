//! Host tests against hand-written modules in `tests/modules/*.wat` (shared
//! with the PostgreSQL integration tests) and, when built, the real rule modules.

use std::path::{Path, PathBuf};

use erasure_abi::{Hold, Record};
use serde_json::{json, Map};

use super::*;

const KEEP_EVERYTHING: &str = include_str!("../tests/modules/keep_everything.wat");
const INFINITE_LOOP: &str = include_str!("../tests/modules/infinite_loop.wat");
const MEMORY_BOMB: &str = include_str!("../tests/modules/memory_bomb.wat");
const IMPORTS_WASI: &str = include_str!("../tests/modules/imports_wasi.wat");
const IMPORTS_HOST: &str = include_str!("../tests/modules/imports_host.wat");
const TRAP: &str = include_str!("../tests/modules/trap.wat");
const OOB_OUTPUT: &str = include_str!("../tests/modules/oob_output.wat");
const MALFORMED_JSON: &str = include_str!("../tests/modules/malformed_json.wat");
const WRONG_COUNT: &str = include_str!("../tests/modules/wrong_count.wat");
const ENORMOUS_OUTPUT: &str = include_str!("../tests/modules/enormous_output.wat");
const WRONG_ABI_VERSION: &str = include_str!("../tests/modules/wrong_abi_version.wat");
const MISSING_EVALUATE: &str = include_str!("../tests/modules/missing_evaluate.wat");

/// The ABI exports of a minimal module, for building variants inline.
const PRELUDE: &str = r#"
  (func (export "erasure_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))"#;

const RETAIN_2099: &str = "2099-01-01T00:00:00Z";

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("test module is valid WAT")
}

fn host() -> RuleHost {
    RuleHost::new().expect("engine")
}

fn record(table: &str, category: &str) -> Record {
    Record {
        table: table.into(),
        category: category.into(),
        attrs: Map::new(),
        group: false,
    }
}

fn input(records: Vec<Record>) -> EvalInput {
    EvalInput {
        abi: ABI_VERSION,
        slot: "test".into(),
        now: "2025-06-01T00:00:00Z".into(),
        config: json!({}),
        request: json!({"subject_kind": "contact", "org_id": 1, "source": "test", "request_id": "r-1"}),
        holds: vec![],
        records,
    }
}

fn two_records() -> EvalInput {
    input(vec![
        record("contacts", "contact"),
        record("invoices", "invoice"),
    ])
}

/// Runs `evaluate` on a module loaded without `prepare`'s smoke test, so the
/// fault shows up as it would in a real erasure.
fn run(wat: &str, input: &EvalInput, limits: &Limits) -> Result<Vec<Decision>, HostError> {
    let host = host();
    let module = host.load_wasm(&wasm(wat))?;
    host.evaluate(&module, input, limits)
}

fn prepare(wat: &str) -> Result<Prepared, HostError> {
    host().prepare(&wasm(wat), &json!({}), "test", &Limits::default())
}

fn smoke_fault(wat: &str) -> HostError {
    match prepare(wat) {
        Err(HostError::SmokeTest(inner)) => *inner,
        other => panic!("expected a smoke-test failure, got {other:?}"),
    }
}

fn keep() -> Decision {
    Decision::Retain {
        until: RETAIN_2099.parse().unwrap(),
        basis: "hand-written WAT module".into(),
    }
}

// ---- the well-behaved hand-written module -------------------------------

#[test]
fn keep_everything_answers_once_per_record() {
    let host = host();
    let module = host.load_wasm(&wasm(KEEP_EVERYTHING)).unwrap();
    for n in [0, 1, 2, 7] {
        let records = (0..n).map(|i| record(&format!("t{i}"), "c")).collect();
        let got = host
            .evaluate(&module, &input(records), &Limits::default())
            .unwrap();
        assert_eq!(got, vec![keep(); n], "{n} records");
    }
}

#[test]
fn keep_everything_grows_memory_for_large_inputs() {
    // ~5,000 records: the input and answer need several more pages.
    let records: Vec<Record> = (0..5000)
        .map(|i| record(&format!("table_{i}"), "contact"))
        .collect();
    let got = run(KEEP_EVERYTHING, &input(records), &Limits::default()).unwrap();
    assert_eq!(got.len(), 5000);
    assert!(got.iter().all(|d| *d == keep()));
}

/// `prepare` of the keep-everything module for the retention slot.
fn prepare_keep_everything(host: &RuleHost, config: &Value) -> Prepared {
    host.prepare(
        &wasm(KEEP_EVERYTHING),
        config,
        "retention",
        &Limits::default(),
    )
    .unwrap()
}

#[test]
fn keep_everything_passes_prepare_and_precompiled_bytes_load() {
    let host = host();
    let config = json!({"note": "anything"});
    let prepared = prepare_keep_everything(&host, &config);
    assert_eq!(prepared.wasm_size, wasm(KEEP_EVERYTHING).len());
    assert_eq!(
        prepared.sha256_hex,
        installation_sha256(&wasm(KEEP_EVERYTHING), &config)
    );
    assert!(!prepared.precompiled.is_empty());

    // A second RuleHost stands in for another backend process.
    let other = RuleHost::new().unwrap();
    // SAFETY: the bytes come from prepare() of this build, unaltered.
    let module = unsafe { other.load_precompiled(&prepared.precompiled) }.unwrap();
    let got = other
        .evaluate(&module, &two_records(), &Limits::default())
        .unwrap();
    assert_eq!(got, vec![keep(), keep()]);
}

/// A precompiled module kept in a file loads in another backend and decides alike; a file
/// that is missing, not whole or damaged is refused, never run. So does the code of a module
/// compiled from its WebAssembly, kept the same way.
#[test]
fn precompiled_file_loads_and_damage_is_refused() {
    let host = host();
    let prepared = prepare_keep_everything(&host, &json!(null));
    let dir = std::env::temp_dir().join(format!("erasure-host-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.cwasm", prepared.sha256_hex));
    crate::write_precompiled_file(&path, &prepared.precompiled, b"note").unwrap();
    let other = RuleHost::new().unwrap();
    assert_eq!(other.engine_tag(), host.engine_tag());
    let len = prepared.precompiled.len();
    // SAFETY (every load): the files were written here from prepare()'s or precompile()'s
    // output; the damaged ones are refused by their checksum or length before wasmtime sees
    // them.
    let loaded = unsafe { other.load_precompiled_file(&path) }.unwrap();
    assert_eq!(loaded.note, b"note");
    let got = other
        .evaluate(&loaded.module, &two_records(), &Limits::default())
        .unwrap();
    assert_eq!(got, vec![keep(), keep()]);
    let refused = |path: &Path| {
        matches!(
            unsafe { other.load_precompiled_file(path) },
            Err(HostError::PrecompiledFile(_))
        )
    };
    assert!(refused(&dir.join("missing.cwasm")));
    let whole = std::fs::read(&path).unwrap();
    // A byte in the middle of the artifact, which ends the file.
    let mut bytes = whole.clone();
    bytes[whole.len() - len / 2] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(refused(&path));
    std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
    assert!(refused(&path));

    // A module compiled from its WebAssembly, its code kept: the same answers from the file.
    let compiled = host.load_wasm(&wasm(KEEP_EVERYTHING)).unwrap();
    crate::write_precompiled_file(&path, &host.precompile(&compiled).unwrap(), &[]).unwrap();
    let loaded = unsafe { other.load_precompiled_file(&path) }.unwrap();
    assert!(loaded.note.is_empty());
    let got = other
        .evaluate(&loaded.module, &two_records(), &Limits::default())
        .unwrap();
    assert_eq!(got, vec![keep(), keep()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A precompiled module runs from memory of its own, unmapped with the module's last clone:
/// clones outlive the original, modules are dropped in any order, and the code of one is
/// never affected by unmapping another's.
#[test]
fn precompiled_modules_outlive_their_siblings() {
    let host = host();
    let prepared = prepare_keep_everything(&host, &json!(null));
    // SAFETY (both loads): the bytes come from prepare() of this build, unaltered.
    let mut modules: Vec<LoadedModule> = (0..8)
        .map(|_| unsafe { host.load_precompiled(&prepared.precompiled) }.unwrap())
        .collect();
    let clone = modules[3].clone();
    // Modules 6, 4, 2 and 0, then 3 (the original of the clone, by then at index 1).
    for i in [6, 4, 2, 0, 1] {
        drop(modules.remove(i));
    }
    for module in modules.iter().chain([&clone]) {
        let got = host
            .evaluate(module, &two_records(), &Limits::default())
            .unwrap();
        assert_eq!(got, vec![keep(), keep()]);
    }
    drop(modules);
    let again = unsafe { host.load_precompiled(&prepared.precompiled) }.unwrap();
    assert_eq!(
        host.evaluate(&clone, &two_records(), &Limits::default())
            .unwrap(),
        host.evaluate(&again, &two_records(), &Limits::default())
            .unwrap()
    );
}

#[test]
fn a_miscounting_module_is_caught() {
    // An attrs key named "table" fools keep_everything's counter; the host
    // must notice the extra decision instead of misattributing answers.
    let mut r = record("contacts", "contact");
    r.attrs.insert("table".into(), json!("x"));
    assert!(matches!(
        run(KEEP_EVERYTHING, &input(vec![r]), &Limits::default()),
        Err(HostError::Abi(AbiError::WrongDecisionCount {
            expected: 1,
            got: 2
        }))
    ));
}

#[test]
fn every_call_gets_fresh_fuel_and_memory() {
    let host = host();
    let module = host.load_wasm(&wasm(KEEP_EVERYTHING)).unwrap();
    let records: Vec<Record> = (0..200).map(|i| record(&format!("t{i}"), "c")).collect();
    let limits = Limits {
        fuel: 400_000,
        ..Limits::default()
    };
    // Enough for one call; if fuel carried over, a later call would run dry.
    for _ in 0..5 {
        assert_eq!(
            host.evaluate(&module, &input(records.clone()), &limits)
                .unwrap()
                .len(),
            200
        );
    }
    let starved = Limits {
        fuel: 10_000,
        ..Limits::default()
    };
    assert!(matches!(
        host.evaluate(&module, &input(records), &starved),
        Err(HostError::FuelExhausted)
    ));
}

#[test]
fn output_cap_is_enforced_before_reading() {
    let limits = Limits {
        output_bytes: 100,
        ..Limits::default()
    };
    // One decision fits (16 + 84 = 100 bytes); two do not.
    assert!(run(KEEP_EVERYTHING, &input(vec![record("a", "c")]), &limits).is_ok());
    assert!(matches!(
        run(KEEP_EVERYTHING, &two_records(), &limits),
        Err(HostError::OutputTooLarge { len: 185, cap: 100 })
    ));
}

#[test]
fn input_larger_than_the_memory_cap_is_a_memory_limit() {
    let records: Vec<Record> = (0..2000)
        .map(|i| record(&format!("table_{i}"), "contact"))
        .collect();
    let limits = Limits {
        memory_bytes: 2 << 16,
        ..Limits::default()
    };
    assert!(matches!(
        run(KEEP_EVERYTHING, &input(records), &limits),
        Err(HostError::MemoryLimit)
    ));
}

// ---- hostile modules ----------------------------------------------------

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let err = run(INFINITE_LOOP, &two_records(), &Limits::default()).unwrap_err();
    assert!(matches!(err, HostError::FuelExhausted), "{err}");
    assert!(err.is_module_fault());
    assert!(matches!(
        smoke_fault(INFINITE_LOOP),
        HostError::FuelExhausted
    ));
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let err = run(MEMORY_BOMB, &two_records(), &Limits::default()).unwrap_err();
    assert!(matches!(err, HostError::MemoryLimit), "{err}");
    assert!(matches!(smoke_fault(MEMORY_BOMB), HostError::MemoryLimit));
    // The cap is the configured one, not wasmtime's 4 GiB.
    let generous = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    let probe = format!(
        r#"(module (memory (export "memory") 1) {PRELUDE}
             (func (export "evaluate") (param i32 i32) (result i64)
               (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
               (i64.const 0)))"#
    );
    // 1001 pages (~62.6 MiB) fit in 64 MiB: no limit fault, just an empty (malformed) answer.
    assert!(matches!(
        run(&probe, &input(vec![]), &generous),
        Err(HostError::Abi(AbiError::Malformed(_)))
    ));
    assert!(matches!(
        run(&probe, &input(vec![]), &Limits::default()),
        Err(HostError::MemoryLimit)
    ));
}

#[test]
fn wasi_import_is_refused_at_prepare() {
    let err = prepare(IMPORTS_WASI).unwrap_err();
    match &err {
        HostError::HasImport { module, name } => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("wasi_snapshot_preview1", "fd_write")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("wasi_snapshot_preview1`.`fd_write"),
        "{err}"
    );
    // Loading from bytes checks too.
    assert!(matches!(
        host().load_wasm(&wasm(IMPORTS_WASI)),
        Err(HostError::HasImport { .. })
    ));
}

#[test]
fn host_function_import_is_refused_at_prepare() {
    match prepare(IMPORTS_HOST) {
        Err(HostError::HasImport { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "erasure_log"))
        }
        other => panic!("{other:?}"),
    }
    // Any kind of import, not only functions.
    let memory_import = format!(
        r#"(module (import "env" "memory" (memory 1)) (export "memory" (memory 0)) {PRELUDE}
             (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#
    );
    assert!(
        matches!(prepare(&memory_import), Err(HostError::HasImport { name, .. }) if name == "memory")
    );
}

#[test]
fn unreachable_is_a_trap() {
    let err = run(TRAP, &two_records(), &Limits::default()).unwrap_err();
    match &err {
        HostError::Trap(msg) => assert!(msg.contains("unreachable"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(smoke_fault(TRAP), HostError::Trap(_)));
}

#[test]
fn deep_recursion_is_a_trap_not_a_crash() {
    let wat = format!(
        r#"(module (memory (export "memory") 1) {PRELUDE}
             (func $down (param i64) (result i64) (call $down (i64.add (local.get 0) (i64.const 1))))
             (func (export "evaluate") (param i32 i32) (result i64) (call $down (i64.const 0))))"#
    );
    assert!(matches!(
        run(&wat, &two_records(), &Limits::default()),
        Err(HostError::Trap(_))
    ));
}

#[test]
fn out_of_bounds_output_is_refused() {
    match run(OOB_OUTPUT, &two_records(), &Limits::default()) {
        Err(HostError::OutOfBoundsOutput {
            ptr: 0xffff_fff0,
            len: 32,
        }) => {}
        other => panic!("{other:?}"),
    }
    // One byte past the end, starting inside memory.
    let edge = format!(
        r#"(module (memory (export "memory") 1) {PRELUDE}
             (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0x0000fff0_00000011)))"#
    );
    assert!(matches!(
        run(&edge, &two_records(), &Limits::default()),
        Err(HostError::OutOfBoundsOutput { .. })
    ));
    assert!(matches!(
        smoke_fault(OOB_OUTPUT),
        HostError::OutOfBoundsOutput { .. }
    ));
}

#[test]
fn bad_alloc_pointer_is_refused() {
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "erasure_abi_version") (result i32) (i32.const 1))
        (func (export "alloc") (param i32) (result i32) (i32.const -16))
        (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#;
    assert!(matches!(
        run(wat, &two_records(), &Limits::default()),
        Err(HostError::OutOfBoundsInput)
    ));
}

#[test]
fn malformed_json_is_refused() {
    let err = run(MALFORMED_JSON, &two_records(), &Limits::default()).unwrap_err();
    assert!(
        matches!(err, HostError::Abi(AbiError::Malformed(_))),
        "{err}"
    );
    assert!(matches!(
        smoke_fault(MALFORMED_JSON),
        HostError::Abi(AbiError::Malformed(_))
    ));
}

#[test]
fn wrong_decision_count_is_refused() {
    assert!(matches!(
        run(WRONG_COUNT, &two_records(), &Limits::default()),
        Err(HostError::Abi(AbiError::WrongDecisionCount {
            expected: 2,
            got: 1
        }))
    ));
    // With exactly one record the same module is acceptable...
    assert_eq!(
        run(
            WRONG_COUNT,
            &input(vec![record("a", "c")]),
            &Limits::default()
        )
        .unwrap(),
        vec![Decision::Erase]
    );
    // ...but it cannot be installed: the smoke test has no records.
    assert!(matches!(
        smoke_fault(WRONG_COUNT),
        HostError::Abi(AbiError::WrongDecisionCount {
            expected: 0,
            got: 1
        })
    ));
}

#[test]
fn enormous_output_is_refused_without_reading() {
    match run(ENORMOUS_OUTPUT, &two_records(), &Limits::default()) {
        Err(HostError::OutputTooLarge { len: u32::MAX, cap }) => assert_eq!(cap, 16 << 20),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        smoke_fault(ENORMOUS_OUTPUT),
        HostError::OutputTooLarge { .. }
    ));
}

#[test]
fn refusal_by_the_module_is_reported() {
    let wat = format!(
        r#"(module (memory (export "memory") 1) {PRELUDE}
             (data (i32.const 0) "{{\"error\":\"unknown action keep\"}}")
             (func (export "evaluate") (param i32 i32) (result i64) (i64.const 31)))"#
    );
    let err = run(&wat, &two_records(), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, HostError::Abi(AbiError::ModuleRefused(m)) if m == "unknown action keep"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rule module refused the request: unknown action keep"
    );
}

// ---- interface checks ---------------------------------------------------

#[test]
fn not_wasm_is_refused() {
    let host = host();
    for bytes in [&b""[..], b"\0as", b"hello world", b"\x7fELF\x02\x01\x01\0"] {
        assert!(matches!(
            host.prepare(bytes, &json!({}), "s", &Limits::default()),
            Err(HostError::NotWasm)
        ));
        assert!(matches!(host.load_wasm(bytes), Err(HostError::NotWasm)));
    }
    // A component (layer 1) is WebAssembly but not a rule module.
    assert!(matches!(
        host.load_wasm(b"\0asm\x0d\0\x01\0"),
        Err(HostError::Invalid(_))
    ));
    // Truncated module.
    let mut truncated = wasm(KEEP_EVERYTHING);
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        host.prepare(&truncated, &json!({}), "s", &Limits::default()),
        Err(HostError::Invalid(_))
    ));
}

#[test]
fn missing_exports_are_named() {
    assert!(
        matches!(prepare(MISSING_EVALUATE), Err(HostError::MissingExport(n)) if n == "evaluate")
    );
    let no_memory = format!(
        r#"(module {PRELUDE} (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#
    );
    assert!(matches!(prepare(&no_memory), Err(HostError::MissingExport(n)) if n == "memory"));
    let no_version = r#"(module (memory (export "memory") 1)
        (func (export "alloc") (param i32) (result i32) (i32.const 0))
        (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#;
    assert!(
        matches!(prepare(no_version), Err(HostError::MissingExport(n)) if n == "erasure_abi_version")
    );
    let no_alloc = r#"(module (memory (export "memory") 1)
        (func (export "erasure_abi_version") (result i32) (i32.const 1))
        (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#;
    assert!(matches!(prepare(no_alloc), Err(HostError::MissingExport(n)) if n == "alloc"));
}

#[test]
fn export_types_must_match_exactly() {
    let evaluate_i32 = format!(
        r#"(module (memory (export "memory") 1) {PRELUDE}
             (func (export "evaluate") (param i32 i32) (result i32) (i32.const 0)))"#
    );
    let err = prepare(&evaluate_i32).unwrap_err();
    assert!(
        matches!(&err, HostError::BadExportType { name, .. } if name == "evaluate"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("func (i32, i32) -> (i64)"),
        "{err}"
    );
    assert!(
        err.to_string().contains("found func (i32, i32) -> (i32)"),
        "{err}"
    );

    let alloc_i64 = r#"(module (memory (export "memory") 1)
        (func (export "erasure_abi_version") (result i32) (i32.const 1))
        (func (export "alloc") (param i64) (result i32) (i32.const 0))
        (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#;
    assert!(
        matches!(prepare(alloc_i64), Err(HostError::BadExportType { name, .. }) if name == "alloc")
    );

    let memory_is_a_function = format!(
        r#"(module (memory 1) {PRELUDE}
             (func (export "memory") (result i32) (i32.const 0))
             (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#
    );
    assert!(
        matches!(prepare(&memory_is_a_function), Err(HostError::BadExportType { name, .. }) if name == "memory")
    );
}

#[test]
fn memory64_is_not_accepted() {
    let wat = r#"(module (memory (export "memory") i64 1)
        (func (export "erasure_abi_version") (result i32) (i32.const 1))
        (func (export "alloc") (param i32) (result i32) (i32.const 0))
        (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#;
    assert!(matches!(prepare(wat), Err(HostError::Invalid(_))));
}

#[test]
fn declared_memory_above_the_cap_is_refused() {
    let big = format!(
        r#"(module (memory (export "memory") 512) {PRELUDE}
             (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#
    );
    assert!(matches!(
        prepare(&big),
        Err(HostError::MemoryTooLarge { declared, cap }) if declared == 512 * 65536 && cap == 16 << 20
    ));
    // Loaded without prepare, instantiation itself is refused by the limiter.
    assert!(matches!(
        run(&big, &two_records(), &Limits::default()),
        Err(HostError::MemoryLimit)
    ));
}

#[test]
fn wrong_abi_version_is_refused() {
    assert!(matches!(
        prepare(WRONG_ABI_VERSION),
        Err(HostError::WrongAbiVersion(2))
    ));
}

#[test]
fn precompiled_garbage_is_refused() {
    let host = host();
    // SAFETY: deliberately violates the contract with bytes wasmtime's
    // header check rejects before using any code in them.
    let err = unsafe { host.load_precompiled(b"definitely not an ELF object") }.unwrap_err();
    assert!(matches!(err, HostError::Precompiled(_)), "{err:?}");
    assert!(!err.is_module_fault());
}

#[test]
fn fault_categories() {
    assert!(HostError::FuelExhausted.is_module_fault());
    assert!(HostError::SmokeTest(Box::new(HostError::Trap("x".into()))).is_module_fault());
    assert!(!HostError::SmokeTest(Box::new(HostError::Engine("x".into()))).is_module_fault());
    assert!(!HostError::InputTooLarge(1).is_module_fault());
    assert!(HostError::Abi(AbiError::NotUtf8).is_module_fault());
}

// ---- hashing ------------------------------------------------------------

#[test]
fn canonical_json_sorts_keys_and_is_compact() {
    let a: Value =
        serde_json::from_str(r#"{ "b": [1, {"y": 2, "x": "é\"\n"}], "a": null, "c": 1.5 }"#)
            .unwrap();
    assert_eq!(
        canonical_json(&a),
        r#"{"a":null,"b":[1,{"x":"é\"\n","y":2}],"c":1.5}"#
    );
    assert_eq!(canonical_json(&json!("x")), r#""x""#);
    assert_eq!(canonical_json(&json!([])), "[]");
    assert_eq!(canonical_json(&json!({})), "{}");
    // Keys sort by code point: uppercase before lowercase, "a" before "aa".
    assert_eq!(
        canonical_json(&json!({"aa": 1, "B": 2, "a": 3})),
        r#"{"B":2,"a":3,"aa":1}"#
    );
}

#[test]
fn installation_hash_covers_module_and_config() {
    assert_eq!(
        installation_sha256(b"", &json!({})),
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(
        installation_sha256(b"\0asm", &json!({"b": [true, null], "a": 1})),
        "69c23feb2866fa2a915ebd3e8be6f6cc09daca862472ffbd94995b3653179377"
    );
    let x: Value = serde_json::from_str(r#"{"a": 1, "b": {"c": 2, "d": 3}}"#).unwrap();
    let y: Value = serde_json::from_str(r#"{"b": {"d": 3, "c": 2}, "a": 1}"#).unwrap();
    assert_eq!(installation_sha256(b"m", &x), installation_sha256(b"m", &y));
    assert_ne!(installation_sha256(b"m", &x), installation_sha256(b"n", &x));
    assert_ne!(
        installation_sha256(b"m", &x),
        installation_sha256(b"m", &json!({"a": 2, "b": {"c": 2, "d": 3}}))
    );
}

// ---- the real rule modules, when built ----------------------------------

/// Finds `<name>.wasm` under the workspace target directory; `None` with a
/// note if the wasm32 build has not been run.
fn built_module(name: &str) -> Option<Vec<u8>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    for profile in ["release", "wasm-release", "debug"] {
        let path = target
            .join("wasm32-unknown-unknown")
            .join(profile)
            .join(format!("{name}.wasm"));
        if let Ok(bytes) = std::fs::read(&path) {
            eprintln!("using {}", path.display());
            return Some(bytes);
        }
    }
    eprintln!(
        "note: {name}.wasm not built, test skipped; build with \
         `cargo build --release --target wasm32-unknown-unknown -p erasure-rule-retention -p erasure-rule-legal-hold`"
    );
    None
}

fn retention_config() -> Value {
    json!({
        "regime": "eu-gdpr",
        "default": {"action": "erase"},
        "categories": {
            "invoice": {"action": "retain", "period": "P7Y", "from": "issued_at", "basis": "Tax and accounting law"},
            "audit": {"action": "anonymize", "period": "P12M", "from": "at", "basis": "Security and legal compliance"}
        }
    })
}

#[test]
fn built_retention_module_prepares_and_decides_an_invoice() {
    let Some(bytes) = built_module("erasure_rule_retention") else {
        return;
    };
    let host = host();
    let config = retention_config();
    let prepared = host
        .prepare(&bytes, &config, "retention", &Limits::default())
        .unwrap();
    // SAFETY: the bytes come from prepare() of this build, unaltered.
    let module = unsafe { host.load_precompiled(&prepared.precompiled) }.unwrap();

    let mut invoice = record("invoices", "invoice");
    invoice
        .attrs
        .insert("issued_at".into(), json!("2024-01-15T10:00:00+01:00"));
    let mut old_invoice = record("invoices", "invoice");
    old_invoice
        .attrs
        .insert("issued_at".into(), json!("2015-01-15T00:00:00Z"));
    let mut audit = record("audit_log", "audit");
    audit
        .attrs
        .insert("at".into(), json!("2025-03-01T00:00:00Z"));
    let mut eval = input(vec![
        invoice,
        old_invoice,
        audit,
        record("contacts", "contact"),
    ]);
    eval.config = config;
    eval.slot = "retention".into();

    let got = host.evaluate(&module, &eval, &Limits::default()).unwrap();
    assert_eq!(
        got,
        vec![
            Decision::Retain {
                until: "2031-01-15T09:00:00Z".parse().unwrap(),
                basis: "Tax and accounting law".into()
            },
            Decision::Erase,
            Decision::Anonymize {
                until: Some("2026-03-01T00:00:00Z".parse().unwrap()),
                basis: Some("Security and legal compliance".into())
            },
            Decision::Erase,
        ]
    );
}

#[test]
fn built_retention_module_refuses_a_bad_config_at_prepare() {
    let Some(bytes) = built_module("erasure_rule_retention") else {
        return;
    };
    let bad = json!({"categories": {"invoice": {"action": "keep", "period": "P7Y"}}});
    match host().prepare(&bytes, &bad, "retention", &Limits::default()) {
        Err(HostError::SmokeTest(inner)) => match *inner {
            HostError::Abi(AbiError::ModuleRefused(msg)) => {
                assert!(msg.contains("invoice"), "{msg}")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn built_retention_module_respects_memory_cap() {
    let Some(bytes) = built_module("erasure_rule_retention") else {
        return;
    };
    // The modules are linked with a 64 KiB stack (.cargo/config.toml) and start with two
    // 64 KiB pages of linear memory; a one-page cap cannot hold them.
    let tiny = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    assert!(matches!(
        host().prepare(&bytes, &retention_config(), "retention", &tiny),
        Err(HostError::MemoryTooLarge { .. })
    ));
}

#[test]
fn built_legal_hold_module_holds_covered_records() {
    let Some(bytes) = built_module("erasure_rule_legal_hold") else {
        return;
    };
    let host = host();
    let prepared = host
        .prepare(&bytes, &Value::Null, "legal_hold", &Limits::default())
        .unwrap();
    // SAFETY: the bytes come from prepare() of this build, unaltered.
    let module = unsafe { host.load_precompiled(&prepared.precompiled) }.unwrap();
    let mut eval = two_records();
    eval.holds = vec![Hold {
        id: 5,
        case: "LIT-2025-001".into(),
        categories: Some(vec!["invoice".into()]),
        expires_at: None,
    }];
    assert_eq!(
        host.evaluate(&module, &eval, &Limits::default()).unwrap(),
        vec![
            Decision::Erase,
            Decision::Hold {
                case: "LIT-2025-001".into()
            }
        ]
    );
}

/// A small deterministic generator for varied test data (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() as usize % items.len()]
    }
}

const TEXTS: &[&str] = &[
    "",
    "invoices",
    "Tax law",
    "quote \" and backslash \\ and slash /",
    "tab\tnewline\ncr\rbell\u{7}del\u{7f}nul\u{0}",
    "Art. 17(3)(b) § 147 AO – ünïcödé ✓ 😀",
    "  ",
    "a fairly long legal basis that goes on for a while, enough to cross several words",
];

fn varied_value(rng: &mut Lcg, depth: u32) -> Value {
    match rng.next() % if depth > 2 { 6 } else { 8 } {
        0 => Value::Null,
        1 => json!(rng.next().is_multiple_of(2)),
        2 => json!(rng.next() as i64 - (1 << 30)),
        3 => json!((rng.next() as f64) / 7.0),
        4 | 5 => json!(rng.pick(TEXTS)),
        6 => Value::Array(
            (0..rng.next() % 4)
                .map(|_| varied_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.next() % 4)
                .map(|_| (rng.pick(TEXTS).to_string(), varied_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

#[test]
fn input_encoder_writes_exactly_what_serde_json_writes() {
    let mut rng = Lcg(7);
    for case in 0..300 {
        let records = (0..rng.next() % 6)
            .map(|_| Record {
                table: rng.pick(TEXTS).into(),
                category: rng.pick(TEXTS).into(),
                attrs: (0..rng.next() % 3)
                    .map(|_| (rng.pick(TEXTS).to_string(), varied_value(&mut rng, 1)))
                    .collect(),
                group: rng.next().is_multiple_of(2),
            })
            .collect();
        let holds = (0..rng.next() % 3)
            .map(|_| Hold {
                id: rng.next() as i64 - 5,
                case: rng.pick(TEXTS).into(),
                categories: (rng.next().is_multiple_of(2))
                    .then(|| vec![rng.pick(TEXTS).into(), rng.pick(TEXTS).into()]),
                expires_at: (rng.next().is_multiple_of(2)).then(|| rng.pick(TEXTS).into()),
            })
            .collect();
        let input = EvalInput {
            abi: if case % 10 == 0 { -3 } else { ABI_VERSION },
            slot: rng.pick(TEXTS).into(),
            now: rng.pick(TEXTS).into(),
            config: varied_value(&mut rng, 0),
            request: varied_value(&mut rng, 0),
            holds,
            records,
        };
        assert_eq!(
            String::from_utf8(wire::encode_input(&input, &RecordBatch::of(&input.records)))
                .unwrap(),
            serde_json::to_string(&input).unwrap()
        );
    }
}

/// A batch written attribute by attribute, as the extension writes its rows, holds each
/// record as serde_json writes it, and gives each one back.
#[test]
fn record_batches_hold_what_serde_json_writes() {
    let now = 1_764_000_000;
    let records = Record::invoice_batch(now, 300);
    let written = RecordBatch::invoices(&Record::invoice_issued_micros(now, 300));
    let of_records = RecordBatch::of(&records);
    assert_eq!((written.len(), of_records.len()), (300, 300));
    assert_eq!(written.json, of_records.json);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            written.record_json(i),
            serde_json::to_string(record).unwrap()
        );
    }
    // Several tables, attributes of every kind, a group record, names past the memo's cap.
    let mut rng = Lcg(11);
    let mut records = Vec::new();
    let mut batch = RecordBatch::default();
    for i in 0..60 {
        let record = Record {
            table: rng.pick(TEXTS).into(),
            category: rng.pick(TEXTS).into(),
            attrs: (0..rng.next() % 4)
                .map(|_| {
                    (
                        format!("attr{}", rng.next() % 40),
                        varied_value(&mut rng, 1),
                    )
                })
                .collect::<Map<String, Value>>(),
            group: i % 7 == 0,
        };
        batch.push_with(&record.table, &record.category, record.group, |attrs| {
            for (name, value) in &record.attrs {
                match value {
                    Value::String(text) if text.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                        attrs.plain_str(name, |out| out.extend_from_slice(text.as_bytes()))
                    }
                    _ => attrs.value(name, value),
                }
            }
        });
        records.push(record);
    }
    let expected: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        String::from_utf8(batch.json.clone()).unwrap(),
        expected.join(",")
    );
    for (i, text) in expected.iter().enumerate() {
        assert_eq!(batch.record_json(i), text);
    }
}

/// Answers a module might give, well-formed or not, to compare the fast reader with serde.
fn varied_output(rng: &mut Lcg, records: usize) -> String {
    let dates = [
        "2031-01-15T00:00:00Z",
        "2031-01-15T01:00:00.25+01:00",
        "2026-01-01t00:00:00z",
        "2030-12-31T23:59:60Z",
        "2030-02-30T00:00:00Z",
        "next year",
    ];
    let string =
        |rng: &mut Lcg, options: &[&str]| serde_json::to_string(rng.pick(options)).unwrap();
    let decisions: Vec<String> = (0..records)
        .map(|_| match rng.next() % 9 {
            0 => r#"{"action":"erase"}"#.to_string(),
            1 => format!(r#"{{"action":"anonymize","until":{}}}"#, string(rng, &dates)),
            2 => format!(r#"{{"action":"anonymize","basis":{}}}"#, string(rng, TEXTS)),
            3 => r#"{"action":"anonymize"}"#.to_string(),
            4 => format!(r#"{{"action":"hold","case":{}}}"#, string(rng, TEXTS)),
            5 => format!(
                r#"{{"basis":{},"action":"retain","until":{}}}"#,
                string(rng, TEXTS),
                string(rng, &dates)
            ),
            6 => r#"{ "action" : "retain" , "until" : "2030-01-01T00:00:00+00:00" , "basis" : "b\u00e9" }"#.to_string(),
            _ => format!(
                r#"{{"action":"retain","until":{},"basis":{}}}"#,
                string(rng, &dates),
                string(rng, &["Tax law", "Tax law", "law \"x\"", " "])
            ),
        })
        .collect();
    format!(r#"{{"decisions":[{}]}}"#, decisions.join(","))
}

#[test]
fn fast_output_decoder_agrees_with_serde_on_varied_answers() {
    let mut rng = Lcg(11);
    for _ in 0..3000 {
        let records = (rng.next() % 5) as usize;
        let mut text = varied_output(&mut rng, records).into_bytes();
        // Sometimes damage it: drop, duplicate or replace one byte.
        if rng.next().is_multiple_of(3) && !text.is_empty() {
            let at = rng.next() as usize % text.len();
            match rng.next() % 3 {
                0 => {
                    text.remove(at);
                }
                1 => text.insert(at, text[at]),
                _ => {
                    let bytes = b"\",:{}[] \\a0\x01\xff";
                    text[at] = bytes[rng.next() as usize % bytes.len()];
                }
            }
        }
        let expected = (records + (rng.next().is_multiple_of(4)) as usize)
            .saturating_sub((rng.next().is_multiple_of(8)) as usize);
        assert_eq!(
            erasure_abi::decode_output(&text, expected),
            erasure_abi::decode_output_serde(&text, expected),
            "{}",
            String::from_utf8_lossy(&text)
        );
    }
}

/// Where one batched call's time goes, stage by stage, with each stage's page faults, on the
/// `make bench` input (run with `cargo test --release -p erasure-rule-host tests::stage_times
/// -- --exact --ignored --nocapture` after `make modules`). Diagnostic only: it asserts
/// nothing about speed. Without `--exact` the filter also runs [`load_stage_times`] beside
/// it, in the same process, and the stages that copy memory then take several times longer.
#[test]
#[ignore]
fn stage_times() {
    use std::time::Instant;
    let Some(wasm) = built_module("erasure_rule_retention") else {
        eprintln!("retention module not built; run `make modules`");
        return;
    };
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/retention/eu-gdpr.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let host = host();
    let prepared = host
        .prepare(&wasm, &config, "retention", &Limits::default())
        .unwrap();
    // SAFETY: `prepare`'s own output, unaltered.
    let module = unsafe { host.load_precompiled(&prepared.precompiled) }.unwrap();
    let limits = Limits {
        fuel: 200_000_000,
        memory_bytes: 16 << 20,
        output_bytes: 16 << 20,
    };
    let now_s = 1_764_000_000i64;
    let batch = 5000i64;
    // The records as the extension writes them from its rows (what `make bench` times).
    let issued = Record::invoice_issued_micros(now_s, batch as usize);
    let records = || RecordBatch::invoices(&issued);
    let mut input = input(Vec::new());
    input.slot = "retention".into();
    input.config = config;
    input.now = Timestamp::from_unix_seconds(now_s).to_rfc3339();

    const STAGES: [&str; 8] = [
        "write records",
        "store + instantiate",
        "guest alloc",
        "write input",
        "guest evaluate",
        "decode output",
        "drop decisions",
        "drop store",
    ];
    const CALLS: u64 = 40;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut faults = [0u64; STAGES.len()];
    let mut sizes = (0, 0, 0, 0);
    for _ in 0..CALLS {
        let mut t = Instant::now();
        let mut faults_before = minor_faults();
        let mut lap = |stage: usize, samples: &mut Vec<Vec<f64>>| {
            samples[stage].push(t.elapsed().as_secs_f64() * 1e9 / batch as f64);
            let now = minor_faults();
            faults[stage] += now - faults_before;
            faults_before = now;
            t = Instant::now();
        };
        let batch = records();
        let (head, tail) = wire::encode_input_around(&input);
        let pieces = [&head[..], &batch.json, tail];
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        lap(0, &mut samples);
        let mut store = host.new_store(&limits).unwrap();
        let instance = module.pre.instantiate(&mut store).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "alloc")
            .unwrap();
        let evaluate = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "evaluate")
            .unwrap();
        lap(1, &mut samples);
        let ptr = alloc.call(&mut store, len as i32).unwrap();
        lap(2, &mut samples);
        let mut at = ptr as u32 as usize;
        for piece in pieces {
            memory.write(&mut store, at, piece).unwrap();
            at += piece.len();
        }
        lap(3, &mut samples);
        let fuel_before = store.get_fuel().unwrap_or(0);
        let packed = evaluate.call(&mut store, (ptr, len as i32)).unwrap() as u64;
        lap(4, &mut samples);
        let fuel_used = fuel_before - store.get_fuel().unwrap_or(0);
        let (out_ptr, out_len) = ((packed >> 32) as usize, packed as u32 as usize);
        let decisions =
            decode_output(&memory.data(&store)[out_ptr..out_ptr + out_len], 5000).unwrap();
        lap(5, &mut samples);
        sizes = (len, out_len, memory.data_size(&store), fuel_used);
        drop(decisions);
        lap(6, &mut samples);
        drop(store);
        lap(7, &mut samples);
    }
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    let mut total = 0.0;
    for ((stage, v), faults) in STAGES.iter().zip(&samples).zip(faults) {
        let m = median(v);
        total += m;
        eprintln!(
            "{stage:>20}: {m:7.1} ns/record, {} page faults a call",
            faults / CALLS
        );
    }
    eprintln!("{:>20}: {total:7.1} ns/record (sum of medians)", "total");
    // What `make bench` times: whole `evaluate` calls, decisions dropped inside the timing.
    let calls = std::env::var("CALLS").map_or(40, |r| r.parse().unwrap());
    let mut whole: Vec<f64> = (0..calls)
        .map(|_| {
            let t = Instant::now();
            drop(
                host.evaluate_batch(&module, &input, &records(), &limits)
                    .unwrap(),
            );
            t.elapsed().as_secs_f64() * 1e9 / batch as f64
        })
        .collect();
    whole.sort_by(f64::total_cmp);
    eprintln!(
        "{:>20}: {:7.1} ns/record (median of {calls} calls, min {:.1})",
        "whole evaluate",
        median(&whole),
        whole[0]
    );
    eprintln!(
        "input {} B, output {} B, memory {} B, fuel {} ({} per record)",
        sizes.0,
        sizes.1,
        sizes.2,
        sizes.3,
        sizes.3 / batch as u64
    );
}

/// Minor page faults of the calling thread so far (0 where `/proc` does not say).
fn minor_faults() -> u64 {
    // Field 10 of `stat`, counted after the parenthesised command name.
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| {
            let fields = stat.rsplit_once(')')?.1;
            fields.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Where a precompiled load's time goes (diagnostic, like [`stage_times`]).
#[test]
#[ignore]
fn load_stage_times() {
    use std::time::Instant;
    let Some(wasm) = built_module("erasure_rule_retention") else {
        return;
    };
    let host = host();
    let prepared = host
        .prepare(&wasm, &retention_config(), "retention", &Limits::default())
        .unwrap();
    let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let reps = std::env::var("LOAD_REPS").map_or(40, |r| r.parse().unwrap());
    for _ in 0..reps {
        let t = Instant::now();
        // SAFETY: `prepare`'s own output, unaltered.
        let module = unsafe { Module::deserialize(&host.engine, &prepared.precompiled) }.unwrap();
        let t1 = Instant::now();
        check_interface(&module).unwrap();
        let t2 = Instant::now();
        let pre = Linker::<Guard>::new(&host.engine)
            .instantiate_pre(&module)
            .unwrap();
        let t3 = Instant::now();
        drop((pre, module));
        let t4 = Instant::now();
        for (i, (a, b)) in [(t, t1), (t1, t2), (t2, t3), (t3, t4)].iter().enumerate() {
            samples[i].push((*b - *a).as_secs_f64() * 1e3);
        }
    }
    for (name, v) in ["deserialize", "check interface", "instantiate_pre", "drop"]
        .iter()
        .zip(samples.iter_mut())
    {
        v.sort_by(f64::total_cmp);
        eprintln!(
            "{name:>16}: median {:.3} ms, min {:.3} ms",
            v[v.len() / 2],
            v[0]
        );
    }
    eprintln!(
        "precompiled {} B, wasm {} B",
        prepared.precompiled.len(),
        wasm.len()
    );
}
