//! Contact (end-customer) erasure, four ways, interleaved subject by subject:
//!
//! * floor: hand-written SQL on `public` — lock the contact, then one prepared DELETE per table
//!   leaf-first over the indexed foreign keys, in one transaction;
//! * cascade: one `DELETE FROM crm_cascade.contacts WHERE id = $1`, the rest by ON DELETE CASCADE;
//! * pg_erasure: `SELECT erasure.request_erasure('contact:<id>')` on `public`, default modules;
//! * limit: the floor's statements on `crm_nofk` (no foreign keys to check);
//! * statements, no FK: pg_erasure's own statements for a contact (from
//!   `erasure.explain_plan('contact')`), in one server-side plpgsql call on `crm_nofk`: what the
//!   engine's deletes cost when no per-row foreign-key work is done, next to cascade (subjects
//!   of group B, like pg_erasure);
//! * lower bound: pg_erasure's fixed cost (a request for a contact that has no data) and the
//!   subject's rows deleted by one statement of data-modifying CTEs with no foreign-key work at
//!   all (`session_replication_role = replica`, set once for the session), in one server-side
//!   call: the least a request could cost that keeps the promise's records and deletes with the
//!   fastest form measured (group B's subjects on `crm_cascade`, which no other variant erases).
//!
//! Right after pg_erasure's request, the same connection asks for the same subject again, which
//! now has no data: that request's time is what every request costs besides deleting (context,
//! root look-up, recording the request and its audit entry, commit), reported apart.
//!
//! Each variant has its own connection; the time of a subject is the client-side wall time of
//! its whole transaction including COMMIT. Before and after every subject an independent query
//! (on a separate connection) counts the subject's rows in that variant's schema.

use std::time::Instant;

use postgres::{Client, Statement};
use serde_json::{json, Value};

use super::subjects::{count_sql, row_counts, total, Counts, Pair, CONTACT_TABLES};
use super::util::{ensure, fail, progress, ratio, session, summarize, Summary, R};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Floor,
    Cascade,
    Engine,
    Limit,
    StatementsNoFk,
    LowerBound,
}

pub const VARIANTS: [Variant; 6] = [
    Variant::Floor,
    Variant::Cascade,
    Variant::Engine,
    Variant::Limit,
    Variant::StatementsNoFk,
    Variant::LowerBound,
];

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Floor => "floor",
            Variant::Cascade => "cascade",
            Variant::Engine => "pg_erasure",
            Variant::Limit => "limit",
            Variant::StatementsNoFk => "statements_nofk",
            Variant::LowerBound => "lower_bound",
        }
    }
    pub fn schema(self) -> &'static str {
        match self {
            Variant::Floor | Variant::Engine => "public",
            Variant::Cascade | Variant::LowerBound => "crm_cascade",
            Variant::Limit | Variant::StatementsNoFk => "crm_nofk",
        }
    }
    /// Group B's subjects (pg_erasure's); the others erase group A's.
    fn group_b(self) -> bool {
        matches!(
            self,
            Variant::Engine | Variant::StatementsNoFk | Variant::LowerBound
        )
    }
}

/// The floor's statements on schema `s`, leaf first: the lock of the contact's row, then
/// (table, `DELETE`), every one taking the contact's id as `$1`.
fn floor_sql(s: &str) -> (String, [(&'static str, String); 13]) {
    let conv = format!("SELECT id FROM {s}.conversations WHERE contact_id = $1");
    let lock = format!("SELECT id FROM {s}.contacts WHERE id = $1 FOR UPDATE");
    let deletes = [
        ("media", format!("DELETE FROM {s}.media WHERE message_id IN (SELECT id FROM {s}.messages WHERE conversation_id IN ({conv}))")),
        ("messages", format!("DELETE FROM {s}.messages WHERE conversation_id IN ({conv})")),
        ("ai_logs", format!("DELETE FROM {s}.ai_logs WHERE contact_id = $1")),
        ("ai_logs", format!("DELETE FROM {s}.ai_logs WHERE conversation_id IN ({conv})")),
        ("ai_prompt_cache", format!("DELETE FROM {s}.ai_prompt_cache WHERE contact_id = $1")),
        ("order_items", format!("DELETE FROM {s}.order_items WHERE order_id IN (SELECT id FROM {s}.orders WHERE contact_id = $1)")),
        ("orders", format!("DELETE FROM {s}.orders WHERE contact_id = $1")),
        ("reorder_cycles", format!("DELETE FROM {s}.reorder_cycles WHERE contact_id = $1")),
        ("lifecycle_events", format!("DELETE FROM {s}.lifecycle_events WHERE contact_id = $1")),
        ("contact_labels", format!("DELETE FROM {s}.contact_labels WHERE contact_id = $1")),
        ("segment_members", format!("DELETE FROM {s}.segment_members WHERE contact_id = $1")),
        ("conversations", format!("DELETE FROM {s}.conversations WHERE contact_id = $1")),
        ("contacts", format!("DELETE FROM {s}.contacts WHERE id = $1")),
    ];
    (lock, deletes)
}

/// Where `table`'s count goes in [`Counts`].
fn table_index(table: &str) -> usize {
    CONTACT_TABLES
        .iter()
        .position(|t| *t == table)
        .expect("a contact table")
}

/// The hand-written erasure of one contact on one schema: statements prepared once.
pub struct Floor {
    pub client: Client,
    lock: Statement,
    /// (index into CONTACT_TABLES, statement), in execution order.
    deletes: Vec<(usize, Statement)>,
}

impl Floor {
    pub fn new(mut client: Client, s: &str) -> R<Floor> {
        let (lock, sql) = floor_sql(s);
        let lock = client.prepare(&lock)?;
        let mut deletes = Vec::new();
        for (table, text) in sql {
            deletes.push((table_index(table), client.prepare(&text)?));
        }
        Ok(Floor {
            client,
            lock,
            deletes,
        })
    }

    /// One transaction; returns rows deleted per table.
    pub fn erase(&mut self, id: i64) -> R<Counts> {
        self.deletes_in_transaction(id, true)
    }

    /// The same statements, rolled back: warms a new connection up without deleting anything.
    pub fn rehearse(&mut self, id: i64) -> R<()> {
        self.deletes_in_transaction(id, false).map(drop)
    }

    fn deletes_in_transaction(&mut self, id: i64, commit: bool) -> R<Counts> {
        let mut n = [0i64; 12];
        let mut tx = self.client.transaction()?;
        let locked = tx.query(&self.lock, &[&id])?.len();
        if locked != 1 {
            return fail(format!("floor: contact {id} not found to lock"));
        }
        for (i, stmt) in &self.deletes {
            n[*i] += tx.execute(stmt, &[&id])? as i64;
        }
        if commit {
            tx.commit()?;
        } else {
            tx.rollback()?;
        }
        Ok(n)
    }
}

/// The floor's statements in one server-side call (a PL/pgSQL function on `public`, which
/// caches their plans as the floor's connection caches its prepared statements): the same
/// deletes without the floor's 16 round trips.
pub struct FloorOneCall {
    client: Client,
    call: Statement,
}

impl FloorOneCall {
    const SCHEMA: &str = "public";

    /// Creates the function (once, before any connection uses it: concurrent
    /// `CREATE OR REPLACE`s of one function fail).
    pub fn install(client: &mut Client) -> R<()> {
        let s = Self::SCHEMA;
        let (lock, sql) = floor_sql(s);
        let mut body = format!(
            "{};\nIF NOT FOUND THEN RAISE EXCEPTION 'floor: contact % not found to lock', $1; END IF;\n",
            lock.replacen("SELECT", "PERFORM", 1)
        );
        for (table, text) in sql {
            let at = table_index(table) + 1;
            body.push_str(&format!(
                "{text};\nGET DIAGNOSTICS c = ROW_COUNT;\nn[{at}] := n[{at}] + c;\n"
            ));
        }
        let tables = CONTACT_TABLES.len();
        client.batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {s}.pg_erasure_bench_floor(bigint) RETURNS bigint[]
             LANGUAGE plpgsql AS $body$ DECLARE n bigint[] := array_fill(0::bigint, ARRAY[{tables}]); c bigint;
             BEGIN\n{body}RETURN n;\nEND $body$"
        ))?;
        Ok(())
    }

    /// A connection ready to call the function [`install`](Self::install) created.
    pub fn new(mut client: Client) -> R<FloorOneCall> {
        let s = Self::SCHEMA;
        let call = client.prepare(&format!("SELECT {s}.pg_erasure_bench_floor($1)"))?;
        Ok(FloorOneCall { client, call })
    }

    /// One call, one transaction; returns rows deleted per table.
    pub fn erase(&mut self, id: i64) -> R<Counts> {
        let n: Vec<i64> = self.client.query_one(&self.call, &[&id])?.get(0);
        n.try_into()
            .map_err(|n: Vec<i64>| format!("floor_one_call: {} counts", n.len()).into())
    }

    /// The same call, rolled back: warms a new connection up without deleting anything.
    pub fn rehearse(&mut self, id: i64) -> R<()> {
        let mut tx = self.client.transaction()?;
        tx.query_one(&self.call, &[&id])?;
        Ok(tx.rollback()?)
    }
}

pub struct Cascade {
    client: Client,
    delete: Statement,
}

impl Cascade {
    fn new(mut client: Client) -> R<Cascade> {
        let delete = client.prepare("DELETE FROM crm_cascade.contacts WHERE id = $1")?;
        Ok(Cascade { client, delete })
    }
    fn erase(&mut self, id: i64) -> R<u64> {
        Ok(self.client.execute(&self.delete, &[&id])?)
    }
}

/// pg_erasure's own statements for a contact, as `erasure.explain_plan` shows them (the steps,
/// then the foreign-key check over the keys they deleted), run on the copy without foreign
/// keys: one server-side call, like `request_erasure`.
pub struct StatementsNoFk {
    client: Client,
    call: Statement,
}

impl StatementsNoFk {
    fn new(mut client: Client) -> R<StatementsNoFk> {
        let plan: Value = client
            .query_one("SELECT erasure.explain_plan('contact')", &[])?
            .get(0);
        let mut body = String::new();
        let mut declare = String::new();
        // Tables whose steps return their deleted keys, in the plan's (children-first) order:
        // the delete check's `$n` is the n-th one's keys.
        let mut checking = Vec::new();
        for step in plan["steps"].as_array().into_iter().flatten() {
            let (Some(table), Some(sql)) = (step["table"].as_str(), step["sql"].as_str()) else {
                return fail(format!(
                    "explain_plan('contact'): a step without sql: {step}"
                ));
            };
            // $1 is the contact; parents first, `$2..` are the keys the parents' steps
            // deleted (`parent_keys`); then the outbox's request id (0: no request, as the
            // function's $2 says) and table.
            let parents: Vec<&str> = step["parent_keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let own = 1 + parents.len();
            let mut sql = sql
                .replace("\"public\".", "\"crm_nofk\".")
                .replace(&format!("${}", own + 2), &format!("'{table}'"))
                .replace(&format!("${}", own + 1), "0::bigint");
            for (j, parent) in parents.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", 2 + j), &format!("k_{parent}"));
            }
            ensure(!sql.contains("\"public\""), || {
                format!("statement still names public: {sql}")
            })?;
            if step.get("checked_foreign_keys").is_some() {
                // The step returns its deleted keys for the engine's foreign-key check (and,
                // parents first, for its children's steps): keep them, as the engine does.
                checking.push(table.to_owned());
                declare.push_str(&format!("k_{table} bigint[];\n"));
                body.push_str(&format!(
                    "WITH d AS ({sql}) SELECT array_agg(d.id) INTO k_{table} FROM d;\n"
                ));
            } else {
                body.push_str(&sql);
                body.push_str(";\n");
            }
        }
        if plan["order"] == "parents first" {
            checking.reverse();
        }
        // The engine's one foreign-key check over those keys.
        if let Some(check) = plan["delete_check"].as_str() {
            let mut check = check.replace("\"public\".", "\"crm_nofk\".");
            for (n, table) in checking.iter().enumerate().rev() {
                check = check.replace(&format!("ANY(${})", n + 1), &format!("ANY(k_{table})"));
            }
            body.push_str(&format!("PERFORM ({check});\n"));
        }
        client.batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION crm_nofk.pg_erasure_statements(bigint, bigint) RETURNS void
             LANGUAGE plpgsql AS $body$ DECLARE\n{declare}BEGIN\n{body}END $body$"
        ))?;
        // The engine runs a person's statements with generic plans; so does this model.
        client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        let call = client.prepare("SELECT crm_nofk.pg_erasure_statements($1, 0)")?;
        Ok(StatementsNoFk { client, call })
    }
    fn erase(&mut self, id: i64) -> R<()> {
        self.client.query_one(&self.call, &[&id])?;
        Ok(())
    }
}

/// pg_erasure's fixed cost and the fastest deletes measured, in one transaction: see the
/// module's comment.
pub struct LowerBound {
    client: Client,
    call: Statement,
    /// A contact subject with no data.
    no_data: String,
}

impl LowerBound {
    fn new(mut client: Client) -> R<LowerBound> {
        let s = "crm_cascade";
        let deletes = [
            format!("DELETE FROM {s}.media WHERE message_id IN (SELECT id FROM msg)"),
            format!("DELETE FROM {s}.messages WHERE id IN (SELECT id FROM msg)"),
            format!("DELETE FROM {s}.ai_logs WHERE contact_id = $1"),
            format!("DELETE FROM {s}.ai_logs WHERE conversation_id IN (SELECT id FROM conv)"),
            format!("DELETE FROM {s}.ai_prompt_cache WHERE contact_id = $1"),
            format!("DELETE FROM {s}.order_items WHERE order_id IN (SELECT id FROM ord)"),
            format!("DELETE FROM {s}.orders WHERE contact_id = $1"),
            format!("DELETE FROM {s}.reorder_cycles WHERE contact_id = $1"),
            format!("DELETE FROM {s}.lifecycle_events WHERE contact_id = $1"),
            format!("DELETE FROM {s}.contact_labels WHERE contact_id = $1"),
            format!("DELETE FROM {s}.segment_members WHERE contact_id = $1"),
            format!("DELETE FROM {s}.conversations WHERE contact_id = $1"),
            format!("DELETE FROM {s}.contacts WHERE id = $1"),
        ];
        let ctes: Vec<String> = deletes
            .iter()
            .enumerate()
            .map(|(i, d)| format!("d{i} AS ({d})"))
            .collect();
        // The request is for a contact id no contact has: the engine finds no data, records
        // the request and its audit entry, and answers, as pg_erasure_no_data measures. Generic
        // plans, as the engine uses for its own statements (statements_nofk does the same).
        client.batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {s}.pg_erasure_lower_bound(bigint, text) RETURNS void
             LANGUAGE plpgsql AS $body$ DECLARE one int; BEGIN
             WITH conv AS MATERIALIZED (SELECT id FROM {s}.conversations WHERE contact_id = $1),
                  msg AS MATERIALIZED (SELECT id FROM {s}.messages WHERE conversation_id IN (SELECT id FROM conv)),
                  ord AS MATERIALIZED (SELECT id FROM {s}.orders WHERE contact_id = $1),
                  {}
             SELECT 1 INTO one;
             PERFORM erasure.request_erasure($2);
             END $body$;
             SET session_replication_role = replica;
             SET plan_cache_mode = force_generic_plan",
            ctes.join(",\n                  ")
        ))?;
        let call = client.prepare(&format!("SELECT {s}.pg_erasure_lower_bound($1, $2)"))?;
        let unused: i64 = client
            .query_one(
                "SELECT coalesce(max(id), 0) + 1000000000 FROM public.contacts",
                &[],
            )?
            .get(0);
        Ok(LowerBound {
            client,
            call,
            no_data: format!("contact:{unused}"),
        })
    }
    fn erase(&mut self, id: i64) -> R<()> {
        self.client.query_one(&self.call, &[&id, &self.no_data])?;
        Ok(())
    }
}

pub struct Engine {
    pub client: Client,
    request: Statement,
}

impl Engine {
    pub fn new(mut client: Client) -> R<Engine> {
        let request = client.prepare("SELECT erasure.request_erasure($1)")?;
        Ok(Engine { client, request })
    }
    /// The report of `request_erasure`.
    pub fn erase(&mut self, subject: &str) -> R<Value> {
        Ok(self.client.query_one(&self.request, &[&subject])?.get(0))
    }

    /// The same request, rolled back with its transaction: warms a new connection up (the
    /// extension, its modules, its plans) without deleting or recording anything.
    pub fn rehearse(&mut self, subject: &str) -> R<()> {
        let mut tx = self.client.transaction()?;
        tx.query_one(&self.request, &[&subject])?;
        Ok(tx.rollback()?)
    }
}

/// The engine's report for a contact: rows erased per table, and a check that it kept nothing.
pub fn engine_counts(report: &Value, id: i64) -> R<Counts> {
    ensure(report["status"] == "completed", || {
        format!("pg_erasure contact {id}: status {}", report["status"])
    })?;
    let t = &report["totals"];
    for k in ["anonymized", "retained", "held", "detached"] {
        ensure(t[k].as_i64().unwrap_or(0) == 0, || {
            format!(
                "pg_erasure contact {id}: {k} = {} (default modules erase everything of a contact)",
                t[k]
            )
        })?;
    }
    let mut n = [0i64; 12];
    for (i, table) in CONTACT_TABLES.iter().enumerate() {
        n[i] = report["tables"][*table]["erased"].as_i64().unwrap_or(0);
    }
    ensure(t["erased"].as_i64() == Some(total(&n)), || {
        format!(
            "pg_erasure contact {id}: totals.erased {} is not the sum of its tables {}",
            t["erased"],
            total(&n)
        )
    })?;
    Ok(n)
}

struct Checker {
    client: Client,
    stmts: Vec<(&'static str, Statement)>,
}

impl Checker {
    fn new(mut client: Client) -> R<Checker> {
        let mut stmts = Vec::new();
        for s in ["public", "crm_cascade", "crm_nofk"] {
            stmts.push((s, client.prepare(&count_sql(s))?));
        }
        Ok(Checker { client, stmts })
    }
    fn count(&mut self, schema: &str, id: i64) -> R<Counts> {
        let stmt = &self.stmts.iter().find(|(s, _)| *s == schema).unwrap().1;
        Ok(row_counts(&self.client.query_one(stmt, &[&id])?))
    }
}

/// What a variant's call returned, checked after the clock stopped.
enum Outcome {
    Rows(Counts),
    Contacts(u64),
    Report(Value),
    /// Deleted rows known only from the counts before and after.
    Counted,
}

/// The outcome of one run (one `synchronous_commit` setting).
pub struct RunResult {
    pub sync: bool,
    /// Measured latencies (ms) per variant, in subject order.
    pub latencies: Vec<(Variant, Vec<f64>)>,
    pub rows_per_subject: Vec<(Variant, Vec<i64>)>,
    /// pg_erasure's second request for each subject, which found no data (ms).
    pub no_data_latencies: Vec<f64>,
    /// cascade's second DELETE of each contact, which found no row (ms).
    pub cascade_no_data_latencies: Vec<f64>,
    pub subjects_checked: usize,
}

impl RunResult {
    pub fn summary(&self, v: Variant) -> Summary {
        summarize(&self.latencies.iter().find(|(x, _)| *x == v).unwrap().1)
    }

    pub fn json(&self) -> Value {
        let mut variants = serde_json::Map::new();
        for (v, lat) in &self.latencies {
            let rows = &self
                .rows_per_subject
                .iter()
                .find(|(x, _)| x == v)
                .unwrap()
                .1;
            let mut s = summarize(lat).json();
            s["unit"] = json!("ms");
            s["rows_total"] = json!(rows.iter().sum::<i64>());
            s["latencies_ms"] = json!(lat
                .iter()
                .map(|x| super::util::round3(*x))
                .collect::<Vec<_>>());
            s["rows_per_subject"] = json!(rows);
            variants.insert(v.name().into(), s);
        }
        let m = |v| self.summary(v);
        let (f, c, e, l, s, b) = (
            m(Variant::Floor),
            m(Variant::Cascade),
            m(Variant::Engine),
            m(Variant::Limit),
            m(Variant::StatementsNoFk),
            m(Variant::LowerBound),
        );
        let empty = summarize(&self.no_data_latencies);
        let mut no_data = empty.json();
        no_data["unit"] = json!("ms");
        no_data["what"] = json!(
            "request_erasure of the subject just erased (no data left): a request's fixed cost"
        );
        let cascade_empty = summarize(&self.cascade_no_data_latencies);
        let mut cascade_no_data = cascade_empty.json();
        cascade_no_data["unit"] = json!("ms");
        cascade_no_data["what"] = json!(
            "the cascade's DELETE of the contact just erased (no row left): a round trip, a statement and a commit that writes nothing"
        );
        // Each variant's time less what the same call costs when it finds nothing to delete.
        let deleting = |v: &Summary, empty: &Summary| super::util::round3(v.median - empty.median);
        json!({
            "synchronous_commit": if self.sync { "on" } else { "off" },
            "variants": variants,
            "pg_erasure_no_data": no_data,
            "cascade_no_data": cascade_no_data,
            "decomposition_median_ms": {
                "cascade_deleting": deleting(&c, &cascade_empty),
                "pg_erasure_deleting": deleting(&e, &empty),
                "lower_bound_deleting": deleting(&b, &empty),
                "record_keeping": super::util::round3(empty.median - cascade_empty.median),
                "what": "x_deleting = x - (x's call when it finds nothing); record_keeping = pg_erasure_no_data - cascade_no_data: what a request costs beyond a round trip, a statement and a read-only commit",
            },
            "ratios_median": {
                "pg_erasure/floor": ratio(e.median, f.median),
                "pg_erasure/cascade": ratio(e.median, c.median),
                "pg_erasure/limit": ratio(e.median, l.median),
                "floor/limit": ratio(f.median, l.median),
                "cascade/limit": ratio(c.median, l.median),
                "statements_nofk/cascade": ratio(s.median, c.median),
                "pg_erasure/statements_nofk": ratio(e.median, s.median),
                "pg_erasure_no_data/cascade": ratio(empty.median, c.median),
                "(pg_erasure - pg_erasure_no_data)/cascade": ratio(e.median - empty.median, c.median),
                "lower_bound/cascade": ratio(b.median, c.median),
                "pg_erasure/lower_bound": ratio(e.median, b.median),
                "record_keeping/cascade": ratio(empty.median - cascade_empty.median, c.median),
                "lower_bound_deleting/cascade_deleting": ratio(deleting(&b, &empty), deleting(&c, &cascade_empty)),
                "pg_erasure_deleting/cascade_deleting": ratio(deleting(&e, &empty), deleting(&c, &cascade_empty)),
            },
            "ratios_p95": {
                "pg_erasure/floor": ratio(e.p95, f.p95),
                "pg_erasure/cascade": ratio(e.p95, c.p95),
                "pg_erasure/limit": ratio(e.p95, l.p95),
                "floor/limit": ratio(f.p95, l.p95),
                "cascade/limit": ratio(c.p95, l.p95),
                "statements_nofk/cascade": ratio(s.p95, c.p95),
                "pg_erasure/statements_nofk": ratio(e.p95, s.p95),
                "pg_erasure_no_data/cascade": ratio(empty.p95, c.p95),
                "(pg_erasure - pg_erasure_no_data)/cascade": ratio(e.p95 - empty.p95, c.p95),
                "lower_bound/cascade": ratio(b.p95, c.p95),
                "pg_erasure/lower_bound": ratio(e.p95, b.p95),
            },
            "subjects_checked": self.subjects_checked,
        })
    }
}

/// One run over `pairs` (the first `warmup` are warm-ups) with every connection set to
/// `synchronous_commit = on/off`.
pub fn run(db: &str, pairs: &[Pair], warmup: usize, sync: bool) -> R<RunResult> {
    let tag = if sync { "on" } else { "off" };
    let mut floor = Floor::new(session(db, &format!("floor:{tag}"), Some(sync))?, "public")?;
    let mut cascade = Cascade::new(session(db, &format!("cascade:{tag}"), Some(sync))?)?;
    let mut engine = Engine::new(session(db, &format!("pg_erasure:{tag}"), Some(sync))?)?;
    let mut limit = Floor::new(
        session(db, &format!("limit:{tag}"), Some(sync))?,
        "crm_nofk",
    )?;
    let mut statement =
        StatementsNoFk::new(session(db, &format!("statements_nofk:{tag}"), Some(sync))?)?;
    let mut lower_bound = LowerBound::new(session(db, &format!("lower_bound:{tag}"), Some(sync))?)?;
    let mut checker = Checker::new(session(db, &format!("checker:{tag}"), Some(sync))?)?;

    let n = VARIANTS.len();
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut no_data_lat = Vec::new();
    let mut cascade_no_data_lat = Vec::new();
    let mut rows: Vec<Vec<i64>> = vec![Vec::new(); n];
    let mut checked = 0;
    for (idx, pair) in pairs.iter().enumerate() {
        let warm = idx < warmup;
        let mut before_of: [Option<Counts>; VARIANTS.len()] = [None; VARIANTS.len()];
        // Rotate the order subject by subject so no variant always runs right after another.
        for k in 0..n {
            let vi = (idx + k) % n;
            let v = VARIANTS[vi];
            let id = if v.group_b() { pair.b.id } else { pair.a.id };
            let schema = v.schema();
            let before = checker.count(schema, id)?;
            ensure(before[11] == 1, || {
                format!(
                    "{}: contact {id} missing from {schema} before the erasure",
                    v.name()
                )
            })?;
            let subject = format!("contact:{id}");
            let t0 = Instant::now();
            let outcome = match v {
                Variant::Floor => Outcome::Rows(floor.erase(id)?),
                Variant::Limit => Outcome::Rows(limit.erase(id)?),
                Variant::Cascade => Outcome::Contacts(cascade.erase(id)?),
                Variant::Engine => Outcome::Report(engine.erase(&subject)?),
                Variant::StatementsNoFk => {
                    statement.erase(id)?;
                    Outcome::Counted
                }
                Variant::LowerBound => {
                    lower_bound.erase(id)?;
                    Outcome::Counted
                }
            };
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let after = checker.count(schema, id)?;
            let deleted: Counts = match outcome {
                Outcome::Rows(n) => n,
                Outcome::Report(report) => engine_counts(&report, id)?,
                Outcome::Contacts(n) => {
                    ensure(n == 1, || {
                        format!("cascade: deleted {n} contact rows of {id}")
                    })?;
                    std::array::from_fn(|i| before[i] - after[i])
                }
                Outcome::Counted => std::array::from_fn(|i| before[i] - after[i]),
            };
            ensure(total(&after) == 0, || {
                format!(
                    "{}: contact {id} still has rows in {schema}: {after:?}",
                    v.name()
                )
            })?;
            ensure(deleted == before, || {
                format!(
                    "{}: contact {id} deleted {deleted:?}, but had {before:?} (tables {CONTACT_TABLES:?})",
                    v.name()
                )
            })?;
            before_of[vi] = Some(before);
            if !warm {
                lat[vi].push(ms);
                rows[vi].push(total(&before));
            }
            if v == Variant::Cascade {
                let t0 = Instant::now();
                let again = cascade.erase(id)?;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                ensure(again == 0, || {
                    format!("cascade: contact {id} deleted again: {again} rows")
                })?;
                if !warm {
                    cascade_no_data_lat.push(ms);
                }
            }
            if v == Variant::Engine {
                let t0 = Instant::now();
                let again = engine.erase(&subject)?;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                ensure(
                    again["status"] == "completed" && again["root_rows"] == 0,
                    || format!("pg_erasure contact {id}, asked again: {again}"),
                )?;
                if !warm {
                    no_data_lat.push(ms);
                }
            }
            checked += 1;
        }
        // The same subject in the three schemas had the same rows; the engine's subject (group
        // B) as many in total as its partner when the pair is exact.
        let [f, c, e, l, s, b] = before_of.map(|x| x.unwrap());
        ensure(f == c && f == l, || {
            format!(
                "contact {}: rows differ between schemas: public {f:?}, crm_cascade {c:?}, crm_nofk {l:?}",
                pair.a.id
            )
        })?;
        ensure(
            f == pair.a.counts && e == pair.b.counts && s == pair.b.counts && b == pair.b.counts,
            || {
                format!(
                    "contacts {} / {}: rows changed since the subjects were chosen",
                    pair.a.id, pair.b.id
                )
            },
        )?;
        if pair.exact {
            ensure(total(&e) == total(&f), || {
                format!(
                    "pair {} / {}: pg_erasure's subject has {} rows, floor's {}",
                    pair.a.id,
                    pair.b.id,
                    total(&e),
                    total(&f)
                )
            })?;
        }
        if idx + 1 == warmup {
            progress(&format!(
                "synchronous_commit={tag}: {warmup} warm-up subjects per variant done"
            ));
        }
    }
    progress(&format!(
        "synchronous_commit={tag}: {} subjects per variant measured, {checked} erasures checked",
        pairs.len() - warmup
    ));
    Ok(RunResult {
        sync,
        latencies: VARIANTS.iter().copied().zip(lat).collect(),
        rows_per_subject: VARIANTS.iter().copied().zip(rows).collect(),
        no_data_latencies: no_data_lat,
        cascade_no_data_latencies: cascade_no_data_lat,
        subjects_checked: checked,
    })
}
