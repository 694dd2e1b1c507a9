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
