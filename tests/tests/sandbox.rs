//! Every hostile rule module, through the real server.
//!
//! A module that breaks the sandbox's rules statically (imports, a memory too large to start
//! with, a fault the installation smoke test already provokes) is refused at installation with
//! SQLSTATE 22023 and nothing is installed. A module that behaves during the smoke test and
//! turns hostile on a real request aborts the erasure: 54000 when it hits a resource limit
//! (fuel, memory, output size), 38000 for any other fault. In every case nothing is deleted,
//! the request is recorded as failed with that SQLSTATE, and the same connection (the same
//! backend process) carries on with the next erasure.

use erasure_tests::*;

fn repo_wat(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rules-wasm/host/tests/modules")
        .join(name);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Input length above which a module knows it is serving a real request. The installation
/// smoke test sends no records (about 200 bytes with the config `{}`); a contact's erasure
/// lists every table of the data map (well over 1 KiB).
const REAL_INPUT: u32 = 700;

/// A module that passes the installation smoke test (it answers `{"decisions":[]}` to the
/// short smoke input) and, on a real request, runs `alloc_real` in `alloc` and `eval_real` in
/// `evaluate` before falling through to that same (then wrong) answer.
///
/// Memory: 2 pages; answers are at fixed addresses in page 0, the input goes to 1024.
fn turns_hostile(alloc_real: &str, eval_real: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (memory (export "memory") 2)
          (data (i32.const 0) "{{\"decisions\":[]}}")
          (data (i32.const 32) "{{\"decisions\": [")
          (data (i32.const 64) "{{\"error\":\"sandbox test: this module refuses real requests\"}}")
          (data (i32.const 192) "\ff\fe\fd")
          (func (export "erasure_abi_version") (result i32) (i32.const 1))
          (func (export "alloc") (param $n i32) (result i32)
            (if (i32.gt_u (local.get $n) (i32.const {REAL_INPUT})) (then {alloc_real}))
            (i32.const 1024))
          (func (export "evaluate") (param $p i32) (param $n i32) (result i64)
            (if (i32.gt_u (local.get $n) (i32.const {REAL_INPUT})) (then {eval_real}))
            (i64.const 16)))"#
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}\n{wat}"))
}

/// `(return (i64.const …))` answering `len` bytes at `ptr`.
fn answer(ptr: u32, len: u32) -> String {
    format!(
        "(return (i64.const {}))",
        (u64::from(ptr) << 32) | u64::from(len)
    )
}

/// The refusal at address 64, and its length.
const REFUSAL: &str = r#"{"error":"sandbox test: this module refuses real requests"}"#;

fn install(db: &mut TestDb, slot: &str, wasm: &[u8]) -> Result<String, postgres::Error> {
    db.client
        .query_one("SELECT erasure.install_module($1, $2)", &[&slot, &wasm])
        .map(|row| row.get(0))
}

fn activate(db: &mut TestDb, slot: &str, sha: &str) {
    db.client
        .execute("SELECT erasure.activate_module($1, $2)", &[&slot, &sha])
        .unwrap();
}

fn active_sha(db: &mut TestDb, slot: &str) -> String {
    db.client
        .query_one(
            "SELECT sha256 FROM erasure.modules WHERE slot = $1 AND active",
            &[&slot],
        )
        .unwrap()
        .get(0)
}

fn backend_pid(db: &mut TestDb) -> i32 {
    db.client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0)
}

/// The CRM's data, and the extension's records of kept rows and queued objects: what an
/// erasure would change.
fn data_fingerprint(db: &mut TestDb) -> Vec<(String, String)> {
    let mut tables = db.tables(&["public"]);
    tables.push("erasure.ledger".into());
    tables.push("erasure.storage_outbox".into());
    tables
        .into_iter()
        .map(|t| {
            let sql = format!(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"
            );
            let h: String = db.client.query_one(&sql, &[]).unwrap().get(0);
            (t, h)
        })
        .collect()
}

/// Contacts that own messages, so that every contact erasure has real work to do.
fn contacts(db: &mut TestDb) -> Vec<i64> {
    db.client
        .query(
            "SELECT DISTINCT c.id FROM contacts c JOIN conversations v ON v.contact_id = c.id ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What a failing erasure must leave behind; returns the server's message.
#[track_caller]
fn assert_request_fails_cleanly(
    db: &mut TestDb,
    what: &str,
    subject: &str,
    sqlstate: &str,
) -> String {
    let before = data_fingerprint(db);
    let pid = backend_pid(db);
    let msg = assert_sqlstate(
        db.client
            .query("SELECT erasure.request_erasure($1)", &[&subject]),
        sqlstate,
    );
    assert_eq!(
        data_fingerprint(db),
        before,
        "{what}: nothing deleted or kept"
    );
    let id = last_request_id(db);
    assert_eq!(
        wait_for_failed_request(db, id),
        Some(("failed".to_owned(), sqlstate.to_owned())),
        "{what}: recorded as failed"
    );
    let recorded: String = db
        .client
        .query_one(
            "SELECT error_message FROM erasure.requests WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, msg, "{what}: the recorded message is the error's");
    assert_eq!(backend_pid(db), pid, "{what}: same backend");
    msg
}

/// The same connection goes on: the default modules come back and an erasure completes.
#[track_caller]
fn assert_backend_healthy(db: &mut TestDb, what: &str, subject: &str) {
    let pid = backend_pid(db);
    db.client
        .execute("SELECT erasure.install_default_modules()", &[])
        .unwrap_or_else(|e| panic!("{what}: re-activating the defaults: {e}"));
    let report = db.json("SELECT erasure.request_erasure($1)", &[&subject]);
    assert_eq!(report["status"], "completed", "{what}: {report:#}");
    assert_eq!(report["tables"]["contacts"]["erased"], 1, "{what}");
    assert!(
        report["tables"]["messages"]["erased"].as_i64().unwrap() > 0,
        "{what}: {report:#}"
    );
    assert_eq!(backend_pid(db), pid, "{what}: same backend");
}

#[test]
fn hostile_modules_fail_the_request_cleanly_and_the_backend_carries_on() {
    let mut db = TestDb::new("sandbox_request_time");
    let people = contacts(&mut db);
    // The victim is never erased: every request against it fails.
    let victim = format!("contact:{}", people[0]);
    let mut bystanders = people[1..].iter().map(|id| format!("contact:{id}"));
    let default_retention = active_sha(&mut db, "retention");

    let loop_forever = "(loop $forever (br $forever))";
    let memory_bomb = "(block $refused (loop $more
           (br_if $refused (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
           (br $more)))
         unreachable";
    let malformed = answer(32, 15);
    let oob_output = answer(0xffff_fff0, 32);
    let enormous = answer(0, u32::MAX);
    let refusal = answer(64, REFUSAL.len() as u32);
    let not_utf8 = answer(192, 3);
    let oob_input = "(return (i32.const -16))";
    let keep = "nop";
    // (name, alloc on real input, evaluate on real input, SQLSTATE, excerpt of the message)
    let cases: [(&str, &str, &str, &str, &str); 10] = [
        (
            "infinite loop",
            keep,
            loop_forever,
            "54000",
            "ran out of fuel before answering (erasure.module_fuel)",
        ),
        (
            "memory growth bomb",
            keep,
            memory_bomb,
            "54000",
            "needed more memory than erasure.module_memory_mb allows",
        ),
        (
            "enormous output (4 GiB claimed)",
            keep,
            &enormous,
            "54000",
            "answer is 4294967295 bytes, more than the 16777216 allowed (erasure.module_output_mb)",
        ),
        (
            "trap (unreachable)",
            keep,
            "unreachable",
            "38000",
            "crashed (WebAssembly trap)",
        ),
        (
            "out-of-bounds output pointer",
            keep,
            &oob_output,
            "38000",
            "answer lies outside its memory (pointer 0xfffffff0, length 32)",
        ),
        (
            "out-of-bounds input buffer",
            oob_input,
            keep,
            "38000",
            "alloc returned a buffer outside its memory",
        ),
        (
            "malformed JSON output",
            keep,
            &malformed,
            "38000",
            "module output is not {\"decisions\": [...]} or {\"error\": \"...\"}",
        ),
        (
            "output not UTF-8",
            keep,
            &not_utf8,
            "38000",
            "module output is not valid UTF-8",
        ),
        (
            "wrong decision count",
            keep,
            keep,
            "38000",
            "rule module returned 0 decisions for",
        ),
        (
            "refusal",
            keep,
            &refusal,
            "38000",
            "refused the request: sandbox test: this module refuses real requests",
        ),
    ];
    for (what, alloc_real, eval_real, sqlstate, excerpt) in cases {
        let sha = install(&mut db, "retention", &turns_hostile(alloc_real, eval_real))
            .unwrap_or_else(|e| panic!("{what}: passes the smoke test: {e}"));
        activate(&mut db, "retention", &sha);
        let msg = assert_request_fails_cleanly(&mut db, what, &victim, sqlstate);
        assert!(
            msg.starts_with(&format!("rule module in slot 'retention' ({sha}) failed: ")),
            "{what}: {msg}"
        );
        assert!(msg.contains(excerpt), "{what}: {msg}");
        println!("{what}: {sqlstate} {msg}");
        assert_backend_healthy(&mut db, what, &bystanders.next().unwrap());
        assert_eq!(active_sha(&mut db, "retention"), default_retention);
    }
    // The victim's data is all there, and a last request for it goes through.
    assert_backend_healthy(&mut db, "victim at last", &victim);
}

#[test]
fn output_cap_follows_erasure_module_output_mb() {
    let mut db = TestDb::new("sandbox_output_cap");
    let people = contacts(&mut db);
    let victim = format!("contact:{}", people[0]);
    // A real 2 MiB answer: `{"decisions":[]}` then zero bytes, which is not valid JSON.
    let two_mib = 2 << 20;
    let big = turns_hostile(
        "nop",
        &format!("(drop (memory.grow (i32.const 40))) {}", answer(0, two_mib)),
    );
    let sha = install(&mut db, "retention", &big).unwrap();
    activate(&mut db, "retention", &sha);

    db.client
        .batch_execute("SET erasure.module_output_mb = 1")
        .unwrap();
    let msg = assert_request_fails_cleanly(&mut db, "2 MiB over a 1 MiB cap", &victim, "54000");
    assert!(
        msg.contains(
            "answer is 2097152 bytes, more than the 1048576 allowed (erasure.module_output_mb)"
        ),
        "{msg}"
    );
    println!("2 MiB output, module_output_mb = 1: 54000 {msg}");

    // Under the default 16 MiB cap the same answer is read, and refused as malformed.
    db.client
        .batch_execute("RESET erasure.module_output_mb")
        .unwrap();
    let msg = assert_request_fails_cleanly(&mut db, "2 MiB under the cap", &victim, "38000");
    assert!(msg.contains("module output is not"), "{msg}");
    assert_backend_healthy(&mut db, "after the output cap", &victim);
}

#[test]
fn fuel_budget_follows_erasure_module_fuel() {
    let mut db = TestDb::new("sandbox_fuel");
    let people = contacts(&mut db);
    let victim = format!("contact:{}", people[0]);
    let retention = active_sha(&mut db, "retention");

    // 10 000 units (the smallest allowed) are not enough for the shipped retention module.
    db.client
        .batch_execute("SET erasure.module_fuel = 10000")
        .unwrap();
    let msg = assert_request_fails_cleanly(&mut db, "fuel 10000", &victim, "54000");
    assert!(
        msg.starts_with(&format!(
            "rule module in slot 'retention' ({retention}) failed: the module ran out of fuel"
        )),
        "{msg}"
    );
    println!("default module, module_fuel = 10000: 54000 {msg}");
    // Below the minimum is refused by PostgreSQL itself.
    assert_sqlstate(
        db.client.query("SET erasure.module_fuel = 9999", &[]),
        "22023",
    );

    db.client
        .batch_execute("RESET erasure.module_fuel")
        .unwrap();
    let report = db.json("SELECT erasure.request_erasure($1)", &[&victim]);
    assert_eq!(report["status"], "completed");
    assert_eq!(report["tables"]["contacts"]["erased"], 1);
}

#[test]
fn modules_the_sandbox_cannot_host_are_refused_at_install() {
    let mut db = TestDb::new("sandbox_install");
    let modules_before: i64 = db.count("SELECT count(*) FROM erasure.modules", &[]);
    let audit_before: i64 = db.count("SELECT count(*) FROM erasure.audit_log", &[]);
    let active_before = (
        active_sha(&mut db, "retention"),
        active_sha(&mut db, "legal_hold"),
    );

    let imports_memory = wat::parse_str(
        r#"(module
          (import "env" "memory" (memory 1))
          (export "memory" (memory 0))
          (func (export "erasure_abi_version") (result i32) (i32.const 1))
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let imports_global = wat::parse_str(
        r#"(module
          (import "env" "clock" (global i64))
          (memory (export "memory") 1)
          (func (export "erasure_abi_version") (result i32) (i32.const 1))
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    // 257 pages: one more than the default 16 MiB cap.
    let huge_memory = wat::parse_str(
        r#"(module
          (memory (export "memory") 257)
          (data (i32.const 0) "{\"decisions\":[]}")
          (func (export "erasure_abi_version") (result i32) (i32.const 1))
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "evaluate") (param i32 i32) (result i64) (i64.const 16)))"#,
    )
    .unwrap();

    // (what, module, excerpt of the message)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "import of WASI",
            repo_wat("imports_wasi.wat"),
            "the module imports `wasi_snapshot_preview1`.`fd_write`; rule modules must not import anything",
        ),
        (
            "import of a host function",
            repo_wat("imports_host.wat"),
            "the module imports `env`.`erasure_log`",
        ),
        (
            "imported memory",
            imports_memory,
            "the module imports `env`.`memory`",
        ),
        (
            "imported global",
            imports_global,
            "the module imports `env`.`clock`",
        ),
        (
            "initial memory over erasure.module_memory_mb",
            huge_memory,
            "memory starts at 16842752 bytes, more than the 16777216 bytes allowed (erasure.module_memory_mb)",
        ),
        (
            "wrong ABI version",
            repo_wat("wrong_abi_version.wat"),
            "speaks rule ABI version 2",
        ),
        (
            "missing export",
            repo_wat("missing_evaluate.wat"),
            "does not export `evaluate`",
        ),
        // Faults the smoke test (evaluate with no records) provokes.
        (
            "infinite loop",
            repo_wat("infinite_loop.wat"),
            "failed its installation test (evaluate with no records): the module ran out of fuel",
        ),
        (
            "memory growth bomb",
            repo_wat("memory_bomb.wat"),
            "failed its installation test (evaluate with no records): the module needed more memory",
        ),
        (
            "trap",
            repo_wat("trap.wat"),
            "failed its installation test (evaluate with no records): the module crashed",
        ),
        (
            "out-of-bounds output pointer",
            repo_wat("oob_output.wat"),
            "failed its installation test (evaluate with no records): the module's answer lies outside its memory",
        ),
        (
            "malformed JSON output",
            repo_wat("malformed_json.wat"),
            "failed its installation test (evaluate with no records): module output is not",
        ),
        (
            "wrong decision count",
            repo_wat("wrong_count.wat"),
            "failed its installation test (evaluate with no records): rule module returned 1 decisions for 0 records",
        ),
        (
            "enormous output",
            repo_wat("enormous_output.wat"),
            "failed its installation test (evaluate with no records): the module's answer is 4294967295 bytes",
        ),
        ("not WebAssembly", b"\x7fELF\x02\x01\x01\0".to_vec(), "not a WebAssembly module"),
    ];
    for (what, wasm, excerpt) in cases {
        let msg = assert_sqlstate(
            db.client
                .query("SELECT erasure.install_module('retention', $1)", &[&wasm]),
            "22023",
        );
        assert!(msg.starts_with("module rejected: "), "{what}: {msg}");
        assert!(msg.contains(excerpt), "{what}: {msg}");
        println!("{what}: 22023 {msg}");
    }

    // The memory cap is the GUC's: a 17-page (1.06 MiB) module is refused under a 1 MiB cap and
    // accepted under the default.
    let seventeen_pages = wat::parse_str(
        r#"(module
          (memory (export "memory") 17)
          (data (i32.const 0) "{\"decisions\":[]}")
          (func (export "erasure_abi_version") (result i32) (i32.const 1))
          (func (export "alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "evaluate") (param i32 i32) (result i64) (i64.const 16)))"#,
    )
    .unwrap();
    db.client
        .batch_execute("SET erasure.module_memory_mb = 1")
        .unwrap();
    let msg = assert_sqlstate(
        db.client.query(
            "SELECT erasure.install_module('retention', $1)",
            &[&seventeen_pages],
        ),
        "22023",
    );
    assert!(
        msg.contains("memory starts at 1114112 bytes, more than the 1048576 bytes allowed (erasure.module_memory_mb)"),
        "{msg}"
    );
    println!("17 pages under module_memory_mb = 1: 22023 {msg}");

    // Nothing was installed, nothing audited, the active modules did not change.
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.modules", &[]),
        modules_before
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.audit_log", &[]),
        audit_before
    );
    assert_eq!(
        (
            active_sha(&mut db, "retention"),
            active_sha(&mut db, "legal_hold")
        ),
        active_before
    );

    db.client
        .batch_execute("RESET erasure.module_memory_mb")
        .unwrap();
    let sha = install(&mut db, "retention", &seventeen_pages).unwrap();
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.modules WHERE sha256 = $1 AND NOT active",
            &[&sha]
        ),
        1,
        "installed under the default cap, not activated"
    );
    // And the backend that refused all that still erases.
    let victim: i64 = db.count("SELECT min(id) FROM contacts", &[]);
    let report = db.json(
        "SELECT erasure.request_erasure($1)",
        &[&format!("contact:{victim}")],
    );
    assert_eq!(report["status"], "completed");
}
