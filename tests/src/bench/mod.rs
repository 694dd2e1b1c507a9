//! The pg_erasure benchmark harness (`make bench`, `make bench-smoke`).
//!
//! One fresh database: the reference CRM generated at the chosen scale in `public` with the
//! extension and its default modules, and two copies of the same rows, `crm_cascade` (every
//! foreign key ON DELETE CASCADE) and `crm_nofk` (none). Then, each against its own baseline in
//! the same run:
//!
//! 1. contact erasure four ways (floor, cascade, pg_erasure, limit), interleaved subject by
//!    subject, once with `synchronous_commit = off` and once with it on;
//! 2. pg_erasure with 1, 2 and 4 concurrent clients, and three references the same way: the
//!    floor, the floor in one server-side call, and a CPU-only statement (the last two show how
//!    far the machine's cores let a CPU-bound call scale);
//! 3. rule evaluation alone and module load times, through the host crate;
//! 4. two big organizations of the same shape erased, by pg_erasure and by hand-written SQL,
//!    with the backend's peak memory (and two smaller org erasures for comparison);
//! 5. purge_due against a batched ctid delete loop.
//!
//! Every erasure is checked by independent counts before and after; any mismatch aborts.
//! Results: tables on stdout, `results.json` and `latency.svg` in `--out`.

mod cli;
mod concurrency;
mod contact;
mod memory;
mod orgs;
mod purge;
mod rules;
mod setup;
mod subjects;
mod svg;
mod util;

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{json, Value};

use contact::{RunResult, Variant, VARIANTS};
use util::{f2, f3, int, progress, round3, session, summarize, Table, R};

static START: OnceLock<Instant> = OnceLock::new();

pub fn elapsed_s() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

pub fn main() -> i32 {
    elapsed_s();
    let cfg = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut results = serde_json::Map::new();
    match run(&cfg, &mut results) {
        Ok(()) => 0,
        Err(e) => {
            // postgres::Error says "db error"; the server's message is its source.
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("\n*** BENCH ABORTED: {msg}\n");
            results.insert("checks".into(), json!({"passed": false, "error": msg}));
            let _ = write_json(&cfg, &results);
            if !cfg.keep_db {
                eprintln!("(database {} kept for a post-mortem)", cfg.db);
            }
            1
        }
    }
}

fn write_json(
    cfg: &cli::Config,
    results: &serde_json::Map<String, Value>,
) -> R<std::path::PathBuf> {
    std::fs::create_dir_all(&cfg.out)?;
    let path = cfg.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(results)? + "\n")?;
    Ok(path)
}

fn machine(c: &mut postgres::Client) -> R<Value> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("MemTotal")).and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<i64>().ok())
        })
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let show = |c: &mut postgres::Client, g: &str| -> R<String> {
        Ok(c.query_one(&format!("SHOW {g}"), &[])?.get(0))
    };
    Ok(json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mem_total_kb": mem_kb,
        "kernel": kernel,
        "postgres": c.query_one("SELECT version()", &[])?.get::<_, String>(0),
        "shared_buffers": show(c, "shared_buffers")?,
        "work_mem": show(c, "work_mem")?,
        "jit": show(c, "jit")?,
        "synchronous_commit_default": show(c, "synchronous_commit")?,
        "bench_build": if cfg!(debug_assertions) { "debug" } else { "release" },
    }))
}

/// Modification time of the installed extension library, to notice a `make install` by
/// someone else during the run (new connections would load the new code).
fn library_mtime(c: &mut postgres::Client) -> Option<u64> {
    let dir: String = c
        .query_one(
            "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'",
            &[],
        )
        .ok()?
        .get(0);
    std::fs::metadata(std::path::Path::new(&dir).join("pg_erasure.so"))
        .ok()?
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

fn contact_table(runs: &[RunResult]) -> Table {
    let mut t = Table::new(
        "Contact erasure: ms per subject (transaction incl. COMMIT, client side)",
        &[
            "synchronous_commit",
            "variant",
            "schema",
            "subjects",
            "rows/subject",
            "median",
            "p95",
            "mean",
            "min",
            "max",
            "median ÷ floor",
            "median ÷ limit",
        ],
    );
    for r in runs {
        let f = r.summary(Variant::Floor);
        let l = r.summary(Variant::Limit);
        for v in VARIANTS {
            let s = r.summary(v);
            let rows = &r.rows_per_subject.iter().find(|(x, _)| *x == v).unwrap().1;
            t.row(vec![
                if r.sync { "on" } else { "off" }.into(),
                v.name().into(),
                v.schema().into(),
                s.n.to_string(),
                format!(
                    "{:.1}",
                    rows.iter().sum::<i64>() as f64 / rows.len().max(1) as f64
                ),
                f3(s.median),
                f3(s.p95),
                f3(s.mean),
                f3(s.min),
                f3(s.max),
                f2(s.median / f.median),
                f2(s.median / l.median),
            ]);
        }
    }
    t
}

fn ratio_table(runs: &[RunResult]) -> Table {
    let mut t = Table::new(
        "Contact erasure ratios (same run, interleaved)",
        &["synchronous_commit", "ratio", "of medians", "of p95s"],
    );
    for r in runs {
        let j = r.json();
        for k in [
            "pg_erasure/floor",
            "pg_erasure/cascade",
            "pg_erasure/limit",
            "floor/limit",
            "cascade/limit",
            "statements_nofk/cascade",
            "pg_erasure/statements_nofk",
            "pg_erasure_no_data/cascade",
            "(pg_erasure - pg_erasure_no_data)/cascade",
            "lower_bound/cascade",
            "pg_erasure/lower_bound",
            "record_keeping/cascade",
            "lower_bound_deleting/cascade_deleting",
            "pg_erasure_deleting/cascade_deleting",
        ] {
            t.row(vec![
                if r.sync { "on" } else { "off" }.into(),
                k.into(),
                f2(j["ratios_median"][k].as_f64().unwrap_or(f64::NAN)),
                // The decomposition is of medians only.
                j["ratios_p95"][k].as_f64().map_or("-".into(), f2),
            ]);
        }
    }
    for r in runs {
        let empty = summarize(&r.no_data_latencies);
        let cascade_empty = summarize(&r.cascade_no_data_latencies);
        t.note(format!(
            "synchronous_commit = {}: cascade_no_data = the cascade's DELETE of the contact just erased (no row left), on its connection: median {:.3} ms; x_deleting = x less its call that finds nothing; record_keeping = pg_erasure_no_data - cascade_no_data",
            if r.sync { "on" } else { "off" },
            cascade_empty.median
        ));
        t.note(format!(
            "synchronous_commit = {}: pg_erasure_no_data = request_erasure of the subject just erased (no data left), on pg_erasure's connection: median {:.3} ms, p95 {:.3} ms, the cost of a request besides its deletes",
            if r.sync { "on" } else { "off" },
            empty.median,
            empty.p95
        ));
    }
    t.note("targets apply to the synchronous_commit = off run");
    t
}

fn memory_table(points: &[Value]) -> Table {
    let mut t = Table::new(
        "Backend memory during organization erasures (/proc/<backend>/status, kB)",
        &[
            "erasure",
            "rows",
            "VmRSS before",
            "VmHWM after",
            "VmHWM growth",
            "RssAnon before",
            "RssAnon peak",
            "RssAnon growth",
        ],
    );
    for p in points {
        if p["available"] != true {
            t.row(vec![
                p["label"].as_str().unwrap_or("").into(),
                int(p["rows"].as_i64().unwrap_or(0)),
                "n/a".into(),
            ]);
            continue;
        }
        let g = |k: &str| int(p[k].as_i64().unwrap_or(0));
        t.row(vec![
            p["label"].as_str().unwrap_or("").into(),
            g("rows"),
            g("vm_rss_before_kb"),
            g("vm_hwm_after_kb"),
            g("vm_hwm_growth_kb"),
            g("rss_anon_before_kb"),
            g("rss_anon_peak_kb"),
            g("rss_anon_growth_kb"),
        ]);
    }
    t.note("VmHWM reset before each erasure (clear_refs 5); it includes shared buffers touched (RssShmem, capped by shared_buffers); RssAnon (private memory) sampled every 5 ms");
    t
}

fn run(cfg: &cli::Config, results: &mut serde_json::Map<String, Value>) -> R<()> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let scale = json!({
        "orgs": cfg.orgs, "contacts_per_org": cfg.contacts_per_org,
        "messages_per_conversation": cfg.messages_per_conversation,
        "subjects_per_group": cfg.subjects, "warmup_per_variant": cfg.warmup,
        "org_erasure_org_contacts": cfg.org_contacts, "purge_org_contacts": cfg.purge_org_contacts,
        "concurrency_erasures_per_level": cfg.concurrency_erasures,
        "rule_batch": cfg.rule_batch, "rule_calls": cfg.rule_calls, "load_reps": cfg.load_reps,
        "database": cfg.db, "smoke": cfg.smoke,
    });
    println!(
        "pg_erasure bench{}: {} orgs × {} contacts × ~{} messages per conversation; {} subjects per group (+{} warm-up) per run; org erasure on 2 orgs × {} contacts; purge on 2 orgs × {} contacts; database {}",
        if cfg.smoke { " (smoke)" } else { "" },
        cfg.orgs, cfg.contacts_per_org, cfg.messages_per_conversation, cfg.subjects, cfg.warmup,
        cfg.org_contacts, cfg.purge_org_contacts, cfg.db
    );
    results.insert(
        "harness".into(),
        json!("pg_erasure bench (tests/src/bench)"),
    );
    results.insert("started_unix".into(), json!(started));
    results.insert("scale".into(), scale);
    results.insert(
        "checks".into(),
        json!({"passed": false, "error": "run did not finish"}),
    );

    // ---------------------------------------------------------------- setup
    let db = cfg.db.as_str();
    progress(&format!("creating database {db}"));
    let mut admin = setup::create_database(db)?;
    results.insert("machine".into(), machine(&mut admin)?);
    let t0 = Instant::now();
    let generated = setup::generate(
        &mut admin,
        cfg.orgs,
        cfg.contacts_per_org,
        cfg.messages_per_conversation,
    )?;
    let generate_s = util::secs(t0);
    let rows: i64 = generated
        .as_object()
        .map(|m| m.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    progress(&format!("generated {rows} rows in {generate_s:.1} s"));
    let ext_version = setup::install_extension(&mut admin)?;
    // The library every measurement must run on: the one CREATE EXTENSION loaded. Checked at
    // each phase, since `make install` by someone else would switch new connections over.
    let mut phases: Vec<Value> = Vec::new();
    let mut mark = |c: &mut postgres::Client, phase: &str| {
        phases.push(
            json!({"phase": phase, "at_s": round3(elapsed_s()), "library_mtime": library_mtime(c)}),
        );
    };
    mark(&mut admin, "extension created");
    setup::autovacuum_off(&mut admin, "public")?;
    let t0 = Instant::now();
    let (copy_cascade_s, copy_nofk_s) = setup::copy_both(db)?;
    let copy_s = util::secs(t0);
    progress(&format!("copies built in {copy_s:.1} s (side by side)"));
    setup::autovacuum_off(&mut admin, "crm_cascade")?;
    setup::autovacuum_off(&mut admin, "crm_nofk")?;
    let copies = setup::verify_copies(&mut admin)?;
    let t0 = Instant::now();
    // The same physical state for the three schemas: no dead tuples from the generator's
    // UPDATE of orders, hint bits and visibility map set, fresh statistics.
    admin.batch_execute("VACUUM (ANALYZE)")?;
    let vacuum_s = util::secs(t0);
    progress(&format!("VACUUM (ANALYZE) in {vacuum_s:.1} s"));

    // ---------------------------------------------------------------- subjects
    let runs_n = 2;
    // Two runs (synchronous_commit off, on), each with every erasing variant at every level.
    let pool_size = concurrency::LEVELS.len() * cfg.concurrency_erasures * concurrency::ERASING * 2;
    let sel = subjects::select(&mut admin, runs_n, cfg.warmup, cfg.subjects, pool_size)?;
    progress(&format!("subjects chosen: {}", sel.info));
    let mut setup_json = json!({
        "generated_rows": generated, "generated_rows_total": rows, "generate_s": round3(generate_s),
        "copy_s": round3(copy_s), "copy_crm_cascade_s": round3(copy_cascade_s),
        "copy_crm_nofk_s": round3(copy_nofk_s), "vacuum_analyze_s": round3(vacuum_s),
        "copies": copies, "extension_version": ext_version,
        "autovacuum": "off on the CRM tables of the bench database (all schemas), VACUUM (ANALYZE) after setup",
    });

    // ---------------------------------------------------------------- contact variants
    mark(&mut admin, "contact runs");
    let mut runs = Vec::new();
    for (i, sync) in [false, true].into_iter().enumerate() {
        util::checkpoint(&mut admin)?;
        runs.push(contact::run(db, &sel.runs[i], cfg.warmup, sync)?);
    }
    results.insert(
        "contact_erasure".into(),
        json!({
            "subjects": sel.info,
            "method": "6 variants on their own connections, interleaved subject by subject with the order rotated per subject; floor and pg_erasure on public (disjoint subjects of the same shape: groups A and B), cascade and limit on the copies with group A's ids, statements_nofk (pg_erasure's statements from explain_plan('contact'), retargeted at crm_nofk, in one plpgsql call) with group B's ids, lower_bound (a request_erasure of a contact with no data and, before it, the subject's rows deleted by one statement of data-modifying CTEs with no foreign-key work, session_replication_role = replica; one plpgsql call) on crm_cascade with group B's ids; time = client-side wall time of the whole transaction incl. COMMIT (pg_erasure, cascade, statements_nofk and lower_bound: one autocommit statement; floor and limit: BEGIN, SELECT ... FOR UPDATE, 13 prepared DELETEs, COMMIT); the subject's rows are counted on a separate connection right before (and after) its erasure, so every variant finds them in shared buffers: warm-cache figures; CHECKPOINT before each run",
            "runs": runs.iter().map(RunResult::json).collect::<Vec<_>>(),
        }),
    );
    let mut outbox_note = None;
    let ob: i64 = admin
        .query_one(
            "SELECT count(*) FROM erasure.storage_outbox WHERE request_id <> 0",
            &[],
        )?
        .get(0);
    if ob > 0 {
        outbox_note = Some(ob);
    }

    // ---------------------------------------------------------------- concurrency
    mark(&mut admin, "concurrency");
    let mut conc = Vec::new();
    let per_level = cfg.concurrency_erasures;
    let span = concurrency::ERASING * concurrency::LEVELS.len() * per_level;
    for (i, sync) in [false, true].into_iter().enumerate() {
        util::checkpoint(&mut admin)?;
        conc.push(concurrency::measure(
            db,
            sync,
            &sel.pool[i * span..(i + 1) * span],
            per_level,
        )?);
    }
    results.insert(
        "concurrency".into(),
        json!({
            "method": "threads with a connection each, distinct contacts (next-closest shapes), a fixed number of erasures per level split over 3 rounds, each round going through every level, the clients of a round taking the next subject from one shared queue until none is left, each new connection first making 6 calls of its variant, rolled back (cpu_reference: plain calls), before the clock starts; at each level pg_erasure, the floor (hand-written deletes, one transaction per contact, 16 round trips), floor_one_call (the same deletes in one PL/pgSQL call) and cpu_reference (a CPU-only statement sized to pg_erasure's single-client median) in turn; throughput = erasures / the level's wall time summed over its rounds, each from the common start to the last finish; no pre-count here, so subjects' rows may first have to be read into shared buffers (latencies above the contact runs' warm-cache ones)",
            "runs": conc.iter().map(concurrency::json).collect::<Vec<_>>(),
        }),
    );

    // ---------------------------------------------------------------- rule evaluation
    mark(&mut admin, "rule evaluation");
    // A CPU-only measurement in this process: first let the server write out what the runs
    // above left (WAL, dirty buffers), as before each contact run, so its background writes do
    // not share the two cores with the module.
    util::checkpoint(&mut admin)?;
    let rules = rules::measure(
        db,
        &mut admin,
        cfg.rule_batch,
        cfg.rule_calls,
        cfg.load_reps,
    )?;
    results.insert("rule_evaluation".into(), rules.clone());

    // ---------------------------------------------------------------- big organizations
    admin.batch_execute("DROP SCHEMA crm_cascade CASCADE; DROP SCHEMA crm_nofk CASCADE")?;
    let max_org: i64 = admin
        .query_one("SELECT max(id) FROM organizations", &[])?
        .get(0);
    let t0 = Instant::now();
    let g1 = setup::generate(
        &mut admin,
        2,
        cfg.org_contacts,
        cfg.messages_per_conversation,
    )?;
    let g2 = setup::generate(
        &mut admin,
        2,
        cfg.purge_org_contacts,
        cfg.messages_per_conversation,
    )?;
    let big_s = util::secs(t0);
    let new_orgs: Vec<i64> = admin
        .query(
            "SELECT id FROM organizations WHERE id > $1 ORDER BY id",
            &[&max_org],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    util::ensure(new_orgs.len() == 4, || {
        format!("expected 4 new orgs, got {new_orgs:?}")
    })?;
    progress(&format!("big orgs {new_orgs:?} generated in {big_s:.1} s"));
    setup_json["big_orgs_generated"] = json!([g1, g2]);
    setup_json["big_orgs_generate_s"] = json!(round3(big_s));
    results.insert("setup".into(), setup_json);

    // The two base orgs that lost the fewest contacts to the subjects above.
    let normal: Vec<i64> = admin
        .query(
            "SELECT org_id FROM contacts WHERE org_id <= $1 GROUP BY org_id ORDER BY count(*) DESC, org_id LIMIT 2",
            &[&max_org],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    util::ensure(normal.len() == 2, || {
        "fewer than 2 base orgs have contacts left".into()
    })?;
    mark(&mut admin, "organization erasure");
    let mut engine = contact::Engine::new(session(db, "org:pg_erasure", None)?)?;
    let mut floor = orgs::OrgFloor::new(session(db, "org:floor", None)?)?;
    let org_phase = orgs::measure(
        db,
        &mut engine,
        &mut floor,
        (normal[0], normal[1]),
        (new_orgs[0], new_orgs[1]),
    )?;
    results.insert("org_erasure".into(), org_phase.json());

    // ---------------------------------------------------------------- purge
    mark(&mut admin, "purge");
    let (purge, purge_mem) = purge::measure(db, &mut engine, &mut admin, new_orgs[2], new_orgs[3])?;
    results.insert("purge".into(), purge.clone());

    let mut mem = vec![
        org_phase.normal.0.memory.clone(),
        org_phase.big.0.memory.clone(),
        org_phase.normal.1.memory.clone(),
        org_phase.big.1.memory.clone(),
    ];
    mem.extend(purge_mem);
    results.insert(
        "memory".into(),
        json!({"method": "VmHWM of the backend reset (clear_refs 5) before, read after; RssAnon sampled every 5 ms", "points": mem}),
    );

    // ---------------------------------------------------------------- output
    let svg = svg::render(
        &runs,
        &format!(
            "Contact erasure latency, {} subjects per variant ({} orgs × {} contacts)",
            cfg.subjects, cfg.orgs, cfg.contacts_per_org
        ),
    );
    std::fs::create_dir_all(&cfg.out)?;
    std::fs::write(cfg.out.join("latency.svg"), svg)?;
    let checked: usize = runs.iter().map(|r| r.subjects_checked).sum();
    results.insert(
        "checks".into(),
        json!({
            "passed": true,
            "contact_erasures_checked": checked,
            "concurrency_erasures_checked": concurrency::erasures(&conc),
            "org_erasures_checked": 4,
            "purges_checked": 2,
            "what": "per subject: rows counted in every table before and after by an independent query on its schema; every variant deleted exactly the counted rows, table by table, and nothing is left; the same subject has the same rows in public, crm_cascade and crm_nofk; exact pairs have equal totals; pg_erasure kept nothing of a contact; orgs: report adds up to the counted rows, only recent invoices, anonymised recent audit rows and the anonymised org row remain, on both sides; purge: every due ledger row purged, nothing of either org left, baseline deleted exactly the other org's kept rows",
        }),
    );
    mark(&mut admin, "end");
    let first = phases[0]["library_mtime"].clone();
    let changed: Vec<String> = phases
        .iter()
        .filter(|p| p["library_mtime"] != first)
        .map(|p| p["phase"].as_str().unwrap_or("").to_owned())
        .collect();
    let reinstalled = !changed.is_empty();
    results.insert(
        "extension_library".into(),
        json!({"reinstalled_during_measurements": reinstalled, "phases": phases}),
    );
    let finished = elapsed_s();
    results.insert("duration_s".into(), json!(round3(finished)));
    let path = write_json(cfg, results)?;

    println!();
    print!("{}", contact_table(&runs).render());
    println!();
    print!("{}", ratio_table(&runs).render());
    println!();
    print!("{}", concurrency::table(&conc).render());
    println!();
    print!("{}", org_phase.table().render());
    println!();
    print!("{}", purge::table(&purge).render());
    println!();
    print!("{}", memory_table(&mem).render());
    println!();
    print!("{}", rules::table(&rules).render());
    println!();
    let lat_all: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.latencies.iter().flat_map(|(_, v)| v.iter().copied()))
        .collect();
    println!(
        "checks passed: {checked} contact erasures, {} concurrent erasures, 4 org erasures, 2 purges; {} latencies between {:.2} and {:.2} ms",
        concurrency::erasures(&conc),
        lat_all.len(),
        summarize(&lat_all).min,
        summarize(&lat_all).max
    );
    if let Some(n) = outbox_note {
        println!("pg_erasure queued {n} media objects in erasure.storage_outbox during the contact runs (the floor queues none)");
    }
    println!(
        "setup: generate {generate_s:.1} s, copies {copy_s:.1} s, vacuum {vacuum_s:.1} s, big orgs {big_s:.1} s; whole run {finished:.1} s"
    );
    if reinstalled {
        println!(
            "WARNING: pg_erasure.so was reinstalled after CREATE EXTENSION (seen at: {}); connections opened after that ran the new build",
            changed.join(", ")
        );
    }
    println!(
        "results: {}  chart: {}",
        path.display(),
        cfg.out.join("latency.svg").display()
    );

    drop(engine);
    drop(floor);
    drop(admin);
    if !cfg.keep_db {
        setup::drop_database(db)?;
    }
    Ok(())
}
