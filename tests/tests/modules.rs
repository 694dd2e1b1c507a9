//! Rule modules through the real server: a hand-written WAT module changes an erasure's outcome;
//! hostile modules are refused at install or abort the erasure with a clear SQLSTATE, deleting
//! nothing, recording the request as failed, and leaving the backend healthy.

use erasure_tests::*;

fn repo_wat(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rules-wasm/host/tests/modules")
        .join(name);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A module that passes the install-time smoke test (its input has no records, so it is short)
/// and misbehaves on a real request, whose input lists records.
fn turns_hostile(on_real_input: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (data (i32.const 0) "{{\"decisions\":[]}}")
          (func (export "erasure_abi_version") (result i32) (i32.const 1))
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "evaluate") (param $p i32) (param $n i32) (result i64)
            (if (i32.gt_u (local.get $n) (i32.const 700)) (then {on_real_input}))
            (i64.const 16)))"#
    ))
    .unwrap()
}

fn contact_rows(db: &mut TestDb) -> i64 {
    db.count(
        "SELECT (SELECT count(*) FROM contacts) + (SELECT count(*) FROM messages) + (SELECT count(*) FROM conversations)",
        &[],
    )
}

#[test]
fn hostile_modules_abort_the_erasure_and_delete_nothing() {
    let mut db = TestDb::new("hostile");
    let victim: i64 = db.count("SELECT min(id) FROM contacts", &[]);
    let subject = format!("contact:{victim}");
    for (name, body, sqlstate) in [
        ("infinite loop", "(loop $forever (br $forever))", "54000"),
        ("trap", "unreachable", "38000"),
        ("wrong decision count", "nop", "38000"),
    ] {
        let sha: String = db
            .client
            .query_one(
                "SELECT erasure.install_module('retention', $1)",
                &[&turns_hostile(body)],
            )
            .unwrap()
            .get(0);
        db.client
            .execute("SELECT erasure.activate_module('retention', $1)", &[&sha])
            .unwrap();
        let before = contact_rows(&mut db);
        let msg = assert_sqlstate(
            db.client
                .query("SELECT erasure.request_erasure($1)", &[&subject]),
            sqlstate,
        );
        assert!(
            msg.contains("retention") && msg.contains(&sha),
            "{name}: {msg}"
        );
        assert_eq!(contact_rows(&mut db), before, "{name}: nothing deleted");
        let id = last_request_id(&mut db);
        assert_eq!(
            wait_for_failed_request(&mut db, id),
            Some(("failed".to_owned(), sqlstate.to_owned())),
            "{name}: recorded as failed"
        );
    }
    // The same backend is healthy: back to the default modules, the erasure goes through.
    db.client
        .execute("SELECT erasure.install_default_modules()", &[])
        .unwrap();
    let report = db.json("SELECT erasure.request_erasure($1)", &[&subject]);
    assert_eq!(report["status"], "completed");
    assert_eq!(report["tables"]["contacts"]["erased"], 1);
}

#[test]
fn modules_that_import_anything_are_refused_at_install() {
    let mut db = TestDb::new("imports");
    let before: i64 = db.count("SELECT count(*) FROM erasure.modules", &[]);
    for file in [
        "imports_wasi.wat",
        "imports_host.wat",
        "infinite_loop.wat",
        "missing_evaluate.wat",
        "wrong_abi_version.wat",
    ] {
        let msg = assert_sqlstate(
            db.client.query(
                "SELECT erasure.install_module('retention', $1)",
                &[&repo_wat(file)],
            ),
            "22023",
        );
        assert!(msg.starts_with("module rejected"), "{file}: {msg}");
        if file.starts_with("imports") {
            assert!(msg.contains("import"), "{file}: {msg}");
        }
    }
    let msg = assert_sqlstate(
        db.client.query(
            "SELECT erasure.install_module('retention', '\\x00010203'::bytea)",
            &[],
        ),
        "22023",
    );
    assert!(msg.contains("module rejected"), "{msg}");
    assert_sqlstate(
        db.client.query(
            "SELECT erasure.install_module('nope', $1)",
            &[&repo_wat("keep_everything.wat")],
        ),
        "22023",
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.modules", &[]),
        before,
        "nothing installed"
    );
}

#[test]
fn a_hand_written_wat_module_changes_the_outcome() {
    let mut db = TestDb::new("wat");
    let victim: i64 = db.count("SELECT min(id) FROM contacts", &[]);
    let sha: String = db
        .client
        .query_one(
            "SELECT erasure.install_module('retention', $1)",
            &[&repo_wat("keep_everything.wat")],
        )
        .unwrap()
        .get(0);
    db.client
        .execute("SELECT erasure.activate_module('retention', $1)", &[&sha])
        .unwrap();
    let report = db.json(
        "SELECT erasure.request_erasure($1)",
        &[&format!("contact:{victim}")],
    );
    assert_eq!(report["modules"]["retention"], sha.as_str());
    assert_eq!(report["totals"]["erased"], 0, "{report:#}");
    assert_eq!(report["tables"]["contacts"]["retained"], 1);
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE id = $1", &[&victim]),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.ledger WHERE module_sha256 = $1 AND basis = 'hand-written WAT module' AND until = '2099-01-01T00:00:00Z'", &[&sha]),
        report["totals"]["retained"].as_i64().unwrap()
    );
    // The previous module is still installed: rolling back is one call.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.modules WHERE slot = 'retention'",
            &[]
        ),
        2
    );
}

fn retention_schedule(regime: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/retention")
        .join(format!("{regime}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Ledger rows of `request` for invoices, kept by `module` until exactly `issued_at` + `period`
/// (computed in UTC, truncated to seconds as the ABI stores dates).
fn invoices_kept_until(db: &mut TestDb, request: i64, module: &str, period: &str) -> i64 {
    db.count(
        "SELECT count(*) FROM erasure.ledger l JOIN invoices i ON i.id = l.row_key
          WHERE l.request_id = $1 AND l.table_name = 'invoices' AND l.action = 'retained'
            AND l.module_sha256 = $2
            AND l.until = date_trunc('second', (i.issued_at AT TIME ZONE 'UTC' + $3::text::interval) AT TIME ZONE 'UTC')",
        &[&request, &module, &period],
    )
}

fn invoices_issued_within(db: &mut TestDb, org: i64, period: &str) -> i64 {
    db.count(
        "SELECT count(*) FROM invoices
          WHERE org_id = $1 AND (issued_at AT TIME ZONE 'UTC' + $2::text::interval) AT TIME ZONE 'UTC' > now()",
        &[&org, &period],
    )
}

fn activations(db: &mut TestDb, sha: &str, previous: &str) -> i64 {
    db.count(
        "SELECT count(*) FROM erasure.audit_log
          WHERE event = 'module_activated' AND detail->>'slot' = 'retention'
            AND detail->>'sha256' = $1 AND detail->>'previous' = $2",
        &[&sha, &previous],
    )
}

#[test]
fn a_config_only_change_shortens_retention_and_one_call_rolls_it_back() {
    let mut db = TestDb::new("retention_config");
    let row = db
        .client
        .query_one(
            "SELECT sha256, wasm, config FROM erasure.modules WHERE slot = 'retention' AND active",
            &[],
        )
        .unwrap();
    let (old_sha, wasm, old_config): (String, Vec<u8>, serde_json::Value) =
        (row.get(0), row.get(1), row.get(2));
    let mut config = retention_schedule("eu-gdpr");
    assert_eq!(
        old_config, config,
        "the active module runs the shipped schedule"
    );
    assert_eq!(config["categories"]["invoice"]["period"], "P7Y");

    // The same module bytes, a new configuration: invoices kept 1 year instead of 7.
    config["categories"]["invoice"]["period"] = "P1Y".into();
    config["categories"]["invoice"]["basis"] = "Test schedule: invoices kept 1 year".into();
    let new_sha: String = db
        .client
        .query_one(
            "SELECT erasure.install_module('retention', $1, $2)",
            &[&wasm, &config],
        )
        .unwrap()
        .get(0);
    assert_ne!(new_sha, old_sha, "the configuration is part of the address");
    assert_eq!(
        db.count(
            "SELECT count(DISTINCT wasm) FROM erasure.modules WHERE slot = 'retention'",
            &[]
        ),
        1,
        "no new module code"
    );
    db.client
        .execute(
            "SELECT erasure.activate_module('retention', $1)",
            &[&new_sha],
        )
        .unwrap();
    assert_eq!(activations(&mut db, &new_sha, &old_sha), 1, "audited");

    let within_1y = invoices_issued_within(&mut db, 2, "1 year");
    let within_7y = invoices_issued_within(&mut db, 2, "7 years");
    let all = db.count("SELECT count(*) FROM invoices WHERE org_id = 2", &[]);
    assert!(
        0 < within_1y && within_1y < within_7y,
        "the generator spreads invoices over 10 years"
    );
    let report = db.json("SELECT erasure.request_erasure('org:2')", &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["modules"]["retention"], new_sha.as_str());
    assert_counts(&report, "invoices", (all - within_1y, 0, within_1y, 0));
    let request = report["request_id"].as_i64().unwrap();
    assert_eq!(
        invoices_kept_until(&mut db, request, &new_sha, "1 year"),
        within_1y,
        "every kept invoice until issued_at + 1 year, decided by the new installation"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.ledger WHERE request_id = $1 AND table_name = 'invoices'",
            &[&request]
        ),
        within_1y
    );
    // What is left of organization 2's invoices is exactly the last year's.
    assert_eq!(
        db.count("SELECT count(*) FROM invoices WHERE org_id = 2", &[]),
        within_1y
    );
    assert_eq!(invoices_issued_within(&mut db, 2, "1 year"), within_1y);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.ledger WHERE request_id = $1 AND basis = 'Test schedule: invoices kept 1 year'",
            &[&request]
        ),
        within_1y
    );

    // Rollback: one call, the previous installation is still there.
    db.client
        .execute(
            "SELECT erasure.activate_module('retention', $1)",
            &[&old_sha],
        )
        .unwrap();
    assert_eq!(activations(&mut db, &old_sha, &new_sha), 1, "audited");
    assert_eq!(
        db.client
            .query(
                "SELECT sha256, active FROM erasure.modules WHERE slot = 'retention' ORDER BY active DESC",
                &[]
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect::<Vec<(String, bool)>>(),
        vec![(old_sha.clone(), true), (new_sha.clone(), false)],
        "both installed, the old one active"
    );

    let within_7y = invoices_issued_within(&mut db, 1, "7 years");
    let within_1y = invoices_issued_within(&mut db, 1, "1 year");
    let all = db.count("SELECT count(*) FROM invoices WHERE org_id = 1", &[]);
    assert!(within_1y < within_7y && within_7y < all);
    let report = db.json("SELECT erasure.request_erasure('org:1')", &[]);
    assert_eq!(report["modules"]["retention"], old_sha.as_str());
    assert_counts(&report, "invoices", (all - within_7y, 0, within_7y, 0));
    let request = report["request_id"].as_i64().unwrap();
    assert_eq!(
        invoices_kept_until(&mut db, request, &old_sha, "7 years"),
        within_7y,
        "decided by the old installation again: issued_at + 7 years"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.ledger WHERE request_id = $1 AND table_name = 'invoices'",
            &[&request]
        ),
        within_7y
    );
}

/// `rules-wasm/template` built for WebAssembly, as `make module NAME=template` builds it (into
/// a target directory of its own, so the build does not wait for the test run's lock).
fn template_module() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_dir = root.join("target/template-test");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "erasure-rule-template",
            "--target-dir",
        ])
        .arg(&target_dir)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building the template module failed (is the wasm32-unknown-unknown target installed?)"
    );
    let wasm = target_dir.join("wasm32-unknown-unknown/release/erasure_rule_template.wasm");
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()))
}

#[test]
fn the_template_module_installs_and_decides_as_documented() {
    let mut db = TestDb::new("template");
    let wasm = template_module();

    // A misspelt configuration key is refused at installation, by the module's own check.
    let msg = assert_sqlstate(
        db.client.query(
            "SELECT erasure.install_module('retention', $1, '{\"order_periods\": \"P3Y\"}')",
            &[&wasm],
        ),
        "22023",
    );
    assert!(
        msg.contains("failed its installation test")
            && msg.contains("invalid config")
            && msg.contains("order_periods"),
        "{msg}"
    );

    let sha: String = db
        .client
        .query_one(
            "SELECT erasure.install_module('retention', $1, '{\"order_basis\": \"Test: orders 3 years\"}')",
            &[&wasm],
        )
        .unwrap()
        .get(0);
    db.client
        .execute("SELECT erasure.activate_module('retention', $1)", &[&sha])
        .unwrap();
    let (victim, orders): (i64, i64) = {
        let row = db
            .client
            .query_one(
                "SELECT contact_id, count(*) FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let report = db.json(
        "SELECT erasure.request_erasure($1)",
        &[&format!("contact:{victim}")],
    );
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["modules"]["retention"], sha.as_str());
    // Orders kept 3 years; the reference map gives them no date, so from now.
    assert_counts(&report, "orders", (0, 0, orders, 0));
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.ledger
              WHERE table_name = 'orders' AND action = 'retained' AND module_sha256 = $1
                AND basis = 'Test: orders 3 years'
                AND request_id = $2
                AND until = (SELECT date_trunc('second', (requested_at AT TIME ZONE 'UTC' + interval '3 years') AT TIME ZONE 'UTC')
                               FROM erasure.requests WHERE id = $2)",
            &[&sha, &report["request_id"].as_i64().unwrap()]
        ),
        orders,
        "kept until 3 years from the erasure's time"
    );
    // Everything else of the person is erased (the contact row itself stays, anonymised,
    // while the kept orders reference it).
    assert_counts(&report, "contacts", (0, 1, 0, 0));
    assert!(report["tables"]["messages"]["erased"].as_i64().unwrap() > 0);
    assert_eq!(report["tables"]["messages"]["retained"], 0);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM orders WHERE contact_id = $1",
            &[&victim]
        ),
        orders
    );
}

/// Where each new backend's load of the module `sha` took its native code from, as the
/// extension logs it at DEBUG1, after asking `evaluate_module` for it.
fn load_source(
    db: &str,
    sha: &str,
    subject: &str,
    module_files: bool,
) -> (String, serde_json::Value) {
    let (mut c, messages) = connect_with_messages(db).unwrap();
    c.batch_execute(&format!(
        "SET client_min_messages = debug1; SET erasure.module_files = {module_files}"
    ))
    .unwrap();
    let answer: serde_json::Value = c
        .query_one("SELECT erasure.evaluate_module($1, $2)", &[&sha, &subject])
        .unwrap()
        .get(0);
    drop(c);
    let messages = messages.lock().unwrap().clone();
    let load = messages
        .iter()
        .filter_map(|m| ModuleLoad::parse(m))
        .find(|load| load.sha12 == sha[..12])
        .unwrap_or_else(|| panic!("no load of {sha} logged: {messages:?}"));
    assert_eq!(load.slot, "retention");
    assert!(load.ms > 0.0, "{load:?}");
    (load.source, answer)
}

/// A module's native code is read from `erasure.modules` on its first load and kept in a file
/// in the data directory, with its slot and configuration, from which new backends load it; a damaged file is refused (and
/// written again), and `erasure.module_files = off` reads the table. When the stored code no
/// longer fits the build, the code compiled from the wasm is kept instead. The decisions are
/// the same whichever way the code came.
#[test]
fn new_backends_load_a_module_from_its_kept_file() {
    let mut db = TestDb::new("module_files");
    let subject = format!("contact:{}", db.count("SELECT min(id) FROM contacts", &[]));
    // A configuration of its own makes an installation (and a file name) no earlier run made.
    let unique = format!(
        "{{\"note\": \"{:?}\"}}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    );
    let config: serde_json::Value = serde_json::from_str(&unique).unwrap();
    let sha: String = db
        .client
        .query_one(
            "SELECT erasure.install_module('retention', $1, $2)",
            &[&repo_wat("keep_everything.wat"), &config],
        )
        .unwrap()
        .get(0);
    let (first, answer) = load_source(&db.name, &sha, &subject, true);
    assert_eq!(first, "erasure.modules");
    let (second, again) = load_source(&db.name, &sha, &subject, true);
    assert_eq!(second, "its file");
    assert_eq!(again, answer);
    let (off, without) = load_source(&db.name, &sha, &subject, false);
    assert_eq!(off, "erasure.modules");
    assert_eq!(without, answer);

    // Damage the file's last byte: the next backend refuses it and reads the table, and the
    // one after that finds the file written again.
    let data_dir: String = db
        .client
        .query_one("SHOW data_directory", &[])
        .unwrap()
        .get(0);
    let dir = std::path::Path::new(&data_dir).join("pg_erasure/modules");
    let files_of = |sha: &str| -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(&format!("{sha}-")) && name.ends_with(".cwasm")
            })
            .collect();
        files.sort();
        files
    };
    let [path] = &files_of(&sha)[..] else {
        panic!("not one file for {sha}: {:?}", files_of(&sha))
    };
    let path = path.clone();
    let mut bytes = std::fs::read(&path).unwrap();
    // The file notes the installation's slot and configuration after its 40-byte header (the
    // note's length at bytes 24..32), so a backend that finds it asks the table nothing.
    let note_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    let note: serde_json::Value = serde_json::from_slice(&bytes[40..40 + note_len]).unwrap();
    assert_eq!(
        note,
        serde_json::json!({"slot": "retention", "config": config})
    );
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (damaged, answer_then) = load_source(&db.name, &sha, &subject, true);
    assert_eq!(damaged, "erasure.modules");
    assert_eq!(answer_then, answer);
    let (rewritten, _) = load_source(&db.name, &sha, &subject, true);
    assert_eq!(rewritten, "its file");

    // The stored code stops fitting the build, as after a wasmtime upgrade (here: bytes no
    // wasmtime accepts), and the file is gone; another engine's file and one named as before
    // names had an engine tag are there. The next backend compiles the wasm and keeps that
    // code (removing the untagged file, leaving the other engine's); the one after loads it.
    std::fs::remove_file(&path).unwrap();
    let other_engine = dir.join(format!("{sha}-0123456789abcdef.cwasm"));
    let untagged = dir.join(format!("{sha}.cwasm"));
    for stale in [&other_engine, &untagged] {
        std::fs::write(stale, b"another build's code").unwrap();
    }
    db.client
        .execute(
            "UPDATE erasure.modules SET precompiled = 'not native code'::bytea WHERE sha256 = $1",
            &[&sha],
        )
        .unwrap();
    let (compiled, answer_compiled) = load_source(&db.name, &sha, &subject, true);
    assert_eq!(compiled, "its WebAssembly, compiled");
    assert_eq!(answer_compiled, answer);
    let mut both = vec![other_engine.clone(), path.clone()];
    both.sort();
    assert_eq!(files_of(&sha), both);
    assert!(!untagged.exists());
    let (kept, answer_kept) = load_source(&db.name, &sha, &subject, true);
    assert_eq!(kept, "its file");
    assert_eq!(answer_kept, answer);

    // Installing it again stores code this build loads (audited as such), and the table
    // serves new backends again; a further install with nothing to replace changes nothing.
    let install = |db: &mut TestDb| -> String {
        db.client
            .query_one(
                "SELECT erasure.install_module('retention', $1, $2)",
                &[&repo_wat("keep_everything.wat"), &config],
            )
            .unwrap()
            .get(0)
    };
    let replaced = "SELECT count(*) FROM erasure.audit_log \
                    WHERE event = 'module_code_replaced' AND detail->>'sha256' = $1";
    assert_eq!(install(&mut db), sha);
    assert_eq!(db.count(replaced, &[&sha]), 1);
    let (reinstalled, answer_reinstalled) = load_source(&db.name, &sha, &subject, false);
    assert_eq!(reinstalled, "erasure.modules");
    assert_eq!(answer_reinstalled, answer);
    assert_eq!(install(&mut db), sha);
    assert_eq!(db.count(replaced, &[&sha]), 1);
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&other_engine).unwrap();
}
