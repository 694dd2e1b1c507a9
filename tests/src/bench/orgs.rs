//! Erasure of a whole organization: pg_erasure against a hand-written transaction doing the
//! same work, on two organizations of the same shape. The engine keeps invoices younger than
//! 7 years (retained), anonymises audit rows younger than 12 months and the organization row
//! (still referenced by them), and erases the rest; the hand-written floor does exactly that
//! with plain statements (delete old invoices and audit rows, null the audit rows' personal
//! columns, rename the organization), but writes no ledger, outbox or request rows.

use std::time::Instant;

use postgres::{Client, Statement};
use serde_json::{json, Value};

use super::contact::Engine;
use super::memory;
use super::util::{ensure, int, progress, ratio, round3, Table, R};

/// Every CRM table, leaf first: children before the parents they reference.
pub const ORG_TABLES: [&str; 20] = [
    "media",
    "messages",
    "ai_logs",
    "ai_prompt_cache",
    "order_items",
    "orders",
    "reorder_cycles",
    "lifecycle_events",
    "contact_labels",
    "segment_members",
    "conversations",
    "contacts",
    "labels",
    "segments",
    "channel_connections",
    "team_memberships",
    "audit_logs",
    "users",
    "invoices",
    "organizations",
];

pub type OrgCounts = [i64; 20];

fn idx(t: &str) -> usize {
    ORG_TABLES.iter().position(|x| *x == t).unwrap()
}

/// Rows of an organization per table, and how many invoices / audit rows are past their period.
pub struct OrgRows {
    pub rows: OrgCounts,
    pub old_invoices: i64,
    pub old_audit: i64,
}

impl OrgRows {
    pub fn total(&self) -> i64 {
        self.rows.iter().sum()
    }
}

pub fn org_rows(c: &mut Client, org: i64) -> R<OrgRows> {
    let cols: Vec<String> = ORG_TABLES
        .iter()
        .map(|t| {
            if *t == "organizations" {
                "(SELECT count(*) FROM public.organizations WHERE id = $1)".to_owned()
            } else {
                format!("(SELECT count(*) FROM public.{t} WHERE org_id = $1)")
            }
        })
        .collect();
    let sql = format!(
        "SELECT {},
           (SELECT count(*) FROM public.invoices WHERE org_id = $1 AND issued_at + interval '7 years' <= now()),
           (SELECT count(*) FROM public.audit_logs WHERE org_id = $1 AND at + interval '12 months' <= now())",
        cols.join(", ")
    );
    let row = c.query_one(&sql, &[&org])?;
    Ok(OrgRows {
        rows: std::array::from_fn(|i| row.get(i)),
        old_invoices: row.get(20),
        old_audit: row.get(21),
    })
}

enum Kind {
    Delete,
    Update,
}

/// The hand-written organization erasure, statements prepared once.
pub struct OrgFloor {
    pub client: Client,
    lock: Statement,
    steps: Vec<(usize, Kind, Statement)>,
}

impl OrgFloor {
    pub fn new(mut client: Client) -> R<OrgFloor> {
        let lock =
            client.prepare("SELECT id FROM public.organizations WHERE id = $1 FOR UPDATE")?;
        let mut steps = Vec::new();
        for t in &ORG_TABLES[..16] {
            steps.push((
                idx(t),
                Kind::Delete,
                client.prepare(&format!("DELETE FROM public.{t} WHERE org_id = $1"))?,
            ));
        }
        let tail = [
            ("audit_logs", Kind::Delete, "DELETE FROM public.audit_logs WHERE org_id = $1 AND at + interval '12 months' <= now()"),
            ("audit_logs", Kind::Update, "UPDATE public.audit_logs SET actor_user_id = NULL, ip_address = NULL, details = NULL WHERE org_id = $1"),
            ("users", Kind::Delete, "DELETE FROM public.users WHERE org_id = $1"),
            ("invoices", Kind::Delete, "DELETE FROM public.invoices WHERE org_id = $1 AND issued_at + interval '7 years' <= now()"),
            ("organizations", Kind::Update, "UPDATE public.organizations SET name = 'erased organization' WHERE id = $1"),
        ];
        for (t, kind, sql) in tail {
            steps.push((idx(t), kind, client.prepare(sql)?));
        }
        Ok(OrgFloor {
            client,
            lock,
            steps,
        })
    }

    /// One transaction; rows deleted and rows updated per table.
    pub fn erase(&mut self, org: i64) -> R<(OrgCounts, OrgCounts)> {
        let (mut del, mut upd) = ([0i64; 20], [0i64; 20]);
        let mut tx = self.client.transaction()?;
        ensure(tx.query(&self.lock, &[&org])?.len() == 1, || {
            format!("floor: organization {org} not found")
        })?;
        for (i, kind, stmt) in &self.steps {
            let n = tx.execute(stmt, &[&org])? as i64;
            match kind {
                Kind::Delete => del[*i] += n,
                Kind::Update => upd[*i] += n,
            }
        }
        tx.commit()?;
        Ok((del, upd))
    }
}

pub fn backend_pid(c: &mut Client) -> R<i32> {
    Ok(c.query_one("SELECT pg_backend_pid()", &[])?.get(0))
}

/// One organization erasure by one side, checked.
pub struct OrgRun {
    pub side: &'static str,
    pub org: i64,
    pub before: OrgRows,
    pub deleted: OrgCounts,
    pub updated: OrgCounts,
    /// Rows the engine recorded in its ledger (kept) and outbox.
    pub ledger_rows: i64,
    pub outbox_rows: i64,
    pub seconds: f64,
    pub memory: Value,
}

impl OrgRun {
    pub fn work_rows(&self) -> i64 {
        self.deleted.iter().sum::<i64>() + self.updated.iter().sum::<i64>()
    }
    pub fn rows_per_s(&self) -> f64 {
        self.work_rows() as f64 / self.seconds
    }
    pub fn json(&self) -> Value {
        let per_table: serde_json::Map<String, Value> = ORG_TABLES
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    t.to_string(),
                    json!({"before": self.before.rows[i], "deleted": self.deleted[i], "updated": self.updated[i]}),
                )
            })
            .collect();
        json!({
            "side": self.side, "org": self.org, "rows_before": self.before.total(),
            "rows_deleted": self.deleted.iter().sum::<i64>(), "rows_updated": self.updated.iter().sum::<i64>(),
            "work_rows": self.work_rows(), "seconds": round3(self.seconds),
            "rows_per_s": round3(self.rows_per_s()),
            "engine_ledger_rows": self.ledger_rows, "engine_outbox_rows": self.outbox_rows,
            "tables": per_table, "memory": self.memory,
        })
    }
}

/// The rows an organization has left after an erasure must be exactly the kept ones: recent
/// invoices, recent (anonymised) audit rows and the organization row.
fn check_after(
    c: &mut Client,
    side: &str,
    org: i64,
    before: &OrgRows,
    deleted: &OrgCounts,
) -> R<()> {
    let after = org_rows(c, org)?;
    for (i, t) in ORG_TABLES.iter().enumerate() {
        let expect_left = match *t {
            "invoices" => before.rows[i] - before.old_invoices,
            "audit_logs" => before.rows[i] - before.old_audit,
            "organizations" => 1,
            _ => 0,
        };
        ensure(after.rows[i] == expect_left, || {
            format!(
                "{side} org {org}: {t} has {} rows left, expected {expect_left}",
                after.rows[i]
            )
        })?;
        ensure(before.rows[i] - deleted[i] == after.rows[i], || {
            format!(
                "{side} org {org}: {t} reported {} deleted of {}, {} left",
                deleted[i], before.rows[i], after.rows[i]
            )
        })?;
    }
    let anonymised: i64 = c
        .query_one(
            "SELECT count(*) FROM public.audit_logs WHERE org_id = $1
                AND (actor_user_id IS NOT NULL OR ip_address IS NOT NULL OR details IS NOT NULL)",
            &[&org],
        )?
        .get(0);
    ensure(anonymised == 0, || {
        format!("{side} org {org}: {anonymised} audit rows keep personal data")
    })?;
    let name: String = c
        .query_one(
            "SELECT name FROM public.organizations WHERE id = $1",
            &[&org],
        )?
        .get(0);
    ensure(name == "erased organization", || {
        format!("{side} org {org}: name not anonymised")
    })?;
    Ok(())
}

/// pg_erasure erases `org` on `engine` (default modules), checked against independent counts.
pub fn engine_org(engine: &mut Engine, checker: &mut Client, org: i64, label: &str) -> R<OrgRun> {
    let before = org_rows(checker, org)?;
    super::util::checkpoint(checker)?;
    let pid = backend_pid(&mut engine.client)?;
    let watch = memory::start(pid);
    let t0 = Instant::now();
    let report = engine.erase(&format!("org:{org}"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let memory = watch.finish(label, before.total());
    ensure(report["status"] == "completed", || {
        format!("org {org}: status {}", report["status"])
    })?;
    let (mut deleted, mut updated) = ([0i64; 20], [0i64; 20]);
    let mut kept = 0;
    for (i, t) in ORG_TABLES.iter().enumerate() {
        let r = &report["tables"][*t];
        let n = |k: &str| r[k].as_i64().unwrap_or(0);
        deleted[i] = n("erased");
        updated[i] = n("anonymized") + n("detached");
        kept += n("retained") + n("anonymized") + n("held");
        ensure(
            n("erased") + n("anonymized") + n("retained") + n("held") == before.rows[i],
            || {
                format!(
                    "pg_erasure org {org}: {t} report {r} does not add up to its {} rows",
                    before.rows[i]
                )
            },
        )?;
    }
    ensure(
        deleted[idx("invoices")] == before.old_invoices
            && deleted[idx("audit_logs")] == before.old_audit,
        || {
            format!(
            "pg_erasure org {org}: erased {} invoices / {} audit rows, the floor's predicates say {} / {}",
            deleted[idx("invoices")], deleted[idx("audit_logs")], before.old_invoices, before.old_audit
        )
        },
    )?;
    check_after(checker, "pg_erasure", org, &before, &deleted)?;
    Ok(OrgRun {
        side: "pg_erasure",
        org,
        before,
        deleted,
        updated,
        ledger_rows: kept,
        outbox_rows: report["storage_objects_queued"].as_i64().unwrap_or(0),
        seconds,
        memory,
    })
}

pub fn floor_org(floor: &mut OrgFloor, checker: &mut Client, org: i64, label: &str) -> R<OrgRun> {
    let before = org_rows(checker, org)?;
    super::util::checkpoint(checker)?;
    let pid = backend_pid(&mut floor.client)?;
    let watch = memory::start(pid);
    let t0 = Instant::now();
    let (deleted, updated) = floor.erase(org)?;
    let seconds = t0.elapsed().as_secs_f64();
    let memory = watch.finish(label, before.total());
    check_after(checker, "floor", org, &before, &deleted)?;
    Ok(OrgRun {
        side: "floor",
        org,
        before,
        deleted,
        updated,
        ledger_rows: 0,
        outbox_rows: 0,
        seconds,
        memory,
    })
}

pub struct OrgPhase {
    pub normal: (OrgRun, OrgRun),
    pub big: (OrgRun, OrgRun),
}

/// Normal-size organizations first (they also warm both connections up), then the two big ones.
pub fn measure(
    db: &str,
    engine: &mut Engine,
    floor: &mut OrgFloor,
    normal: (i64, i64),
    big: (i64, i64),
) -> R<OrgPhase> {
    let mut checker = super::util::session(db, "org:check", None)?;
    // Loads the extension and its modules in the engine's backend without touching data.
    engine.client.query_one(
        "SELECT erasure.preview_erasure('contact:9223372036854775807')",
        &[],
    )?;
    let ne = engine_org(engine, &mut checker, normal.0, "pg_erasure, normal org")?;
    let nf = floor_org(floor, &mut checker, normal.1, "floor, normal org")?;
    progress(&format!(
        "normal orgs: pg_erasure {} rows in {:.2} s, floor {} rows in {:.2} s",
        ne.work_rows(),
        ne.seconds,
        nf.work_rows(),
        nf.seconds
    ));
    let be = engine_org(engine, &mut checker, big.0, "pg_erasure, big org")?;
    progress(&format!(
        "big org: pg_erasure {} rows in {:.2} s",
        be.work_rows(),
        be.seconds
    ));
    let bf = floor_org(floor, &mut checker, big.1, "floor, big org")?;
    progress(&format!(
        "big org: floor {} rows in {:.2} s",
        bf.work_rows(),
        bf.seconds
    ));
    Ok(OrgPhase {
        normal: (ne, nf),
        big: (be, bf),
    })
}

impl OrgPhase {
    pub fn json(&self) -> Value {
        let pair = |(e, f): &(OrgRun, OrgRun)| {
            json!({
                "pg_erasure": e.json(), "floor": f.json(),
                "ratio_rows_per_s_pg_erasure_over_floor": ratio(e.rows_per_s(), f.rows_per_s()),
                "ratio_seconds_pg_erasure_over_floor": ratio(e.seconds, f.seconds),
            })
        };
        json!({
            "fairness": "floor does the engine's row work (deletes old invoices and audit rows, nulls the recent audit rows' personal columns, renames the organization) but writes no ledger, outbox or request rows; both in one transaction with synchronous_commit at the server default; CHECKPOINT (untimed) before each erasure; pg_erasure goes first in each pair",
            "big": pair(&self.big),
            "normal": pair(&self.normal),
        })
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(
            "Organization erasure (two orgs of the same shape, one transaction each)",
            &[
                "org size",
                "side",
                "org",
                "rows before",
                "deleted",
                "updated",
                "ledger rows",
                "seconds",
                "rows/s",
                "ratio e/f",
            ],
        );
        for (size, (e, f)) in [("big", &self.big), ("normal", &self.normal)] {
            for r in [e, f] {
                t.row(vec![
                    size.into(),
                    r.side.into(),
                    r.org.to_string(),
                    int(r.before.total()),
                    int(r.deleted.iter().sum()),
                    int(r.updated.iter().sum()),
                    int(r.ledger_rows),
                    format!("{:.3}", r.seconds),
                    int(r.rows_per_s() as i64),
                    if r.side == "pg_erasure" {
                        format!("{:.2}", e.rows_per_s() / f.rows_per_s())
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        t.note("rows/s = (rows deleted + rows updated) / wall time of the transaction incl. COMMIT; ratio e/f = pg_erasure rows/s ÷ floor rows/s");
        t.note("the normal orgs run first and warm both connections up; pg_erasure also writes ledger rows (kept invoices, anonymised audit rows, the org row) and outbox rows (media)");
        t
    }
}
