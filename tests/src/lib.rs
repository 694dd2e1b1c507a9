//! Shared fixtures of the integration tests. They drive a real PostgreSQL 15 with the installed
//! extension through the ordinary `postgres` driver: a template database holds the reference
//! CRM, generated data and the extension; every test clones it, so tests run in parallel in
//! isolation.

use std::sync::{Arc, Mutex, Once};

pub use postgres::Client;
use postgres::NoTls;
use serde_json::Value;

pub const TEMPLATE: &str = "erasure_test_template";

fn os_user() -> String {
    std::env::var("PGUSER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            let out = std::process::Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
}

fn connection_string(db: &str) -> String {
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".into());
    format!("host={host} user={} dbname={db}", os_user())
}

pub fn connect(db: &str) -> Client {
    Client::connect(&connection_string(db), NoTls)
        .unwrap_or_else(|e| panic!("connect to {db}: {e}"))
}

/// The messages the server sends a connection (NOTICE, DEBUG, …), as they arrive.
pub type Messages = Arc<Mutex<Vec<String>>>;

/// A new connection (a new backend) and the messages the server sends it.
pub fn connect_with_messages(db: &str) -> Result<(Client, Messages), postgres::Error> {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = messages.clone();
    let client = connection_string(db)
        .parse::<postgres::Config>()?
        .notice_callback(move |notice| {
            if let Ok(mut m) = sink.lock() {
                m.push(notice.message().to_owned());
            }
        })
        .connect(NoTls)?;
    Ok((client, messages))
}

/// One rule-module load, as the extension logs it at DEBUG1 (`engine::rules::load`):
/// `pg_erasure: rule module <sha12> (<slot>) loaded from <source> in <ms> ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleLoad {
    /// The installation's sha256, its first 12 hex digits.
    pub sha12: String,
    pub slot: String,
    /// `its file`, `erasure.modules` or `its WebAssembly, compiled`.
    pub source: String,
    pub ms: f64,
}

impl ModuleLoad {
    /// The load a server message reports, if it reports one.
    pub fn parse(message: &str) -> Option<ModuleLoad> {
        let rest = message.strip_prefix("pg_erasure: rule module ")?;
        let (sha12, rest) = rest.split_once(" (")?;
        let (slot, rest) = rest.split_once(") loaded from ")?;
        let (source, ms) = rest.rsplit_once(" in ")?;
        Some(ModuleLoad {
            sha12: sha12.to_owned(),
            slot: slot.to_owned(),
            source: source.to_owned(),
            ms: ms.strip_suffix(" ms")?.parse().ok()?,
        })
    }
}

fn repo_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

static TEMPLATE_READY: Once = Once::new();

/// Builds the template database once per test run: CRM schema, generator, 2 organizations of
/// generated data, the extension with its default modules, the reference data map.
fn ensure_template() {
    TEMPLATE_READY.call_once(|| {
        let mut admin = connect("postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
            .unwrap();
        let mut c = connect(TEMPLATE);
        c.batch_execute(&repo_file("sql/crm_schema.sql")).unwrap();
        c.batch_execute(&repo_file("sql/crm_generate.sql")).unwrap();
        c.batch_execute("SELECT public.crm_generate(2, 20)")
            .unwrap();
        c.batch_execute("CREATE EXTENSION pg_erasure").unwrap();
        c.batch_execute("SELECT erasure.load_data_map(erasure.reference_data_map())")
            .unwrap();
    });
}

/// A fresh database cloned from the template, dropped again when the test's handle goes.
pub struct TestDb {
    pub name: String,
    pub client: Client,
}

impl TestDb {
    pub fn new(test: &str) -> TestDb {
        ensure_template();
        let name = format!("erasure_t_{test}");
        let mut admin = connect("postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .unwrap();
        TestDb {
            client: connect(&name),
            name,
        }
    }

    pub fn json(&mut self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Value {
        self.client.query_one(sql, params).unwrap().get(0)
    }

    pub fn count(&mut self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> i64 {
        self.client.query_one(sql, params).unwrap().get(0)
    }

    /// The tables of the given schemas, schema-qualified and quoted, in name order.
    pub fn tables(&mut self, schemas: &[&str]) -> Vec<String> {
        let schemas: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
        self.client
            .query(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                  WHERE schemaname = ANY($1) ORDER BY 1",
                &[&schemas],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Every table of the database, its rows as text in a stable order: a fingerprint to
    /// prove that something changed nothing.
    pub fn fingerprint(&mut self) -> Vec<(String, String)> {
        let tables = self.tables(&["public", "erasure"]);
        tables
            .into_iter()
            .map(|t| {
                let sql = format!("SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x");
                let h: String = self.client.query_one(&sql, &[]).unwrap().get(0);
                (t, h)
            })
            .collect()
    }

    /// Tables (in `public` and `erasure`) in which `needle` occurs anywhere in a row.
    pub fn tables_containing(&mut self, needle: &str) -> Vec<String> {
        let tables = self.tables(&["public", "erasure"]);
        let pattern = format!("%{}%", needle.to_lowercase());
        tables
            .into_iter()
            .filter(|t| {
                let sql = format!("SELECT count(*) FROM {t} x WHERE lower(x::text) LIKE $1");
                let n: i64 = self.client.query_one(&sql, &[&pattern]).unwrap().get(0);
                n > 0
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // keep the database for a post-mortem
        }
        if let Ok(mut admin) = Client::connect(&connection_string("postgres"), NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The per-table counts of a report, `{"erased": n, ...}` of one table.
pub fn counts(report: &Value, table: &str) -> (i64, i64, i64, i64) {
    let t = &report["tables"][table];
    let n = |k: &str| t[k].as_i64().unwrap_or(0);
    (n("erased"), n("anonymized"), n("retained"), n("held"))
}

/// Asserts a report's row for `table` is exactly `(erased, anonymized, retained, held)`.
#[track_caller]
pub fn assert_counts(report: &Value, table: &str, expected: (i64, i64, i64, i64)) {
    assert_eq!(
        counts(report, table),
        expected,
        "counts of {table} in {report:#}"
    );
}

/// Asserts the SQLSTATE of a failed statement.
#[track_caller]
pub fn assert_sqlstate(result: Result<Vec<postgres::Row>, postgres::Error>, code: &str) -> String {
    match result {
        Ok(_) => panic!("expected SQLSTATE {code}, the statement succeeded"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a server error: {e}"));
            assert_eq!(db.code().code(), code, "{}", db.message());
            db.message().to_owned()
        }
    }
}

/// Waits (up to 10 s) for the failed-request recorder to write request `id`.
pub fn wait_for_failed_request(db: &mut TestDb, id: i64) -> Option<(String, String)> {
    for _ in 0..100 {
        if let Some(row) = db
            .client
            .query_opt(
                "SELECT status::text, coalesce(error_code, '') FROM erasure.requests WHERE id = $1",
                &[&id],
            )
            .unwrap()
        {
            return Some((row.get(0), row.get(1)));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// The next request id the extension will hand out (the sequence is not transactional, so a
/// failed request still consumes it).
pub fn last_request_id(db: &mut TestDb) -> i64 {
    db.count("SELECT last_value FROM erasure.requests_id_seq", &[])
}
