//! One erasure: find and lock the subject's root rows, ask the rule modules, then run the plan's
//! steps, one set-based statement per table and decision: children first, or parents first when
//! the rules keep nothing; then check the foreign keys whose per-row checks the steps left out
//! (`delete_checks`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use erasure_abi::{Hold, Until};
use erasure_core::attrs::{write_timestamptz, AttrColumns};
use erasure_core::decide::{combine, Action, Verdict};
use erasure_core::plan::{kind_is_id, DeletedKeys, Plan, RootStyle, Step, StepAction};
use erasure_core::statements::{self, anonymize_values, StatementKind};
use erasure_core::subject::{Subject, SubjectKind, SubjectValue};
use erasure_rule_host::RecordBatch;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde::Serialize;
use serde_json::value::RawValue;

use super::datamap::{self, LoadedMap};
use super::rules::{self, ActiveModule, CallContext};
use super::statements::{first_value, prepared, run, StatementId};
use crate::error::{ExtError, ExtResult};
use crate::guc;

/// What happened to one table's rows.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct TableCounts {
    pub erased: i64,
    pub anonymized: i64,
    pub retained: i64,
    pub held: i64,
    /// Rows that stay with the organization but lost their link to the subject (shown only
    /// where there are some, to keep the report short).
    #[serde(skip_serializing_if = "is_zero")]
    pub detached: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl TableCounts {
    fn add(&mut self, o: &TableCounts) {
        self.erased += o.erased;
        self.anonymized += o.anonymized;
        self.retained += o.retained;
        self.held += o.held;
        self.detached += o.detached;
    }

    fn count(&mut self, action: Action, n: i64) {
        match action {
            Action::Erase => self.erased += n,
            Action::Anonymize => self.anonymized += n,
            Action::Retain => self.retained += n,
            Action::Hold => self.held += n,
        }
    }
}

/// The outcome of the erasure itself; the request layer adds ids, status and deadlines.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub subject_kind: &'static str,
    pub tables: BTreeMap<String, TableCounts>,
    pub totals: TableCounts,
    pub modules: BTreeMap<String, String>,
    pub root_rows: i64,
    pub storage_objects_queued: i64,
    pub records_decided: i64,
    pub holds_applied: Vec<String>,
    pub data_map_id: i64,
    /// What was decided about which record, kept (as bytes, outside the report) so a candidate
    /// module can be replayed against past requests. No personal data: table, category, the
    /// data map's per-row attributes (dates) and the verdict.
    #[serde(skip)]
    pub decision_log: DecisionLog,
}

/// Records decided in one request, with the combined verdict, capped in size.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct DecisionLog {
    pub entries: Vec<LoggedDecision>,
    /// More records were decided than the log keeps.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LoggedDecision {
    /// The record's JSON as the modules were given it (an [`erasure_abi::Record`]).
    pub record: Box<RawValue>,
    pub action: String,
    pub until: Option<Until>,
}

/// The most records one request's decision log keeps.
const DECISION_LOG_CAP: usize = 5_000;

/// What one statement reads at the start of every request: which data map and modules are
/// active, and the transaction's time as the modules see it.
pub struct EngineContext {
    pub map_id: Option<i64>,
    /// Whether any legal hold is active at all; when none is, the hold look-up is skipped.
    pub any_active_hold: bool,
    pub modules: Vec<(String, String)>,
    pub now: String,
}

/// The request as the modules see it (no personal data).
pub struct RequestInfo<'a> {
    pub request_id: i64,
    pub subject: &'a Subject,
    pub subject_hash: &'a str,
    pub org_id: Option<i64>,
    pub source: &'a str,
}

/// Rows a table kept in this erasure that still reference its parents, by how they were kept.
#[derive(Default, Clone, Copy)]
struct Kept {
    retained_or_held: i64,
    anonymized: i64,
}

struct Erasure<'a> {
    map: &'a LoadedMap,
    plan: &'a Plan,
    modules: Vec<std::rc::Rc<ActiveModule>>,
    info: &'a RequestInfo<'a>,
    now: String,
    request_json: serde_json::Value,
    holds: Vec<Hold>,
    roots: Vec<Vec<i64>>,
    kept: HashMap<String, Kept>,
    /// Whether this request checks the plan's checked links itself ([`delete_checks`]).
    batch_checks: bool,
    /// Steps whose per-row foreign-key checks were left out, by index, with the keys they
    /// deleted; none where the plan records its keys in a temporary table instead
    /// ([`DeletedKeys::Recorded`]).
    checked_deletes: HashMap<usize, Vec<i64>>,
    /// Whether this request made sure the session's table of deleted keys exists.
    keys_table_ready: bool,
    outcome: Outcome,
}

pub fn erase(
    client: &mut SpiClient<'_>,
    info: &RequestInfo<'_>,
    ctx: &EngineContext,
) -> ExtResult<Outcome> {
    let map = datamap::by_id(client, ctx.map_id)?;
    let modules = rules::active_modules(client, &ctx.modules)?;
    let now = ctx.now.clone();

    let (roots, orgs) = lock_roots(
        client,
        &map,
        &*map.plan(info.subject.kind, RootStyle::Array)?,
        info,
    )?;
    let style = if roots.iter().all(|r| r.len() <= 1) {
        RootStyle::Scalar
    } else {
        RootStyle::Array
    };
    let plan = map.plan(info.subject.kind, style)?;
    let holds = if ctx.any_active_hold {
        applicable_holds(client, info, &orgs)?
    } else {
        Vec::new()
    };
    let request_json = serde_json::json!({
        "request_id": info.request_id,
        "subject_kind": info.subject.kind.as_str(),
        "org_id": info.org_id,
        "source": info.source,
    });
    let mut e = Erasure {
        map: &map,
        plan: &plan,
        modules,
        info,
        now,
        request_json,
        holds,
        roots,
        kept: HashMap::new(),
        batch_checks: super::delete_checks::enabled(),
        checked_deletes: HashMap::new(),
        keys_table_ready: false,
        outcome: Outcome {
            subject_kind: info.subject.kind.as_str(),
            tables: BTreeMap::new(),
            totals: TableCounts::default(),
            modules: BTreeMap::new(),
            root_rows: 0,
            storage_objects_queued: 0,
            records_decided: 0,
            holds_applied: Vec::new(),
            data_map_id: map.id,
            decision_log: DecisionLog::default(),
        },
    };
    e.outcome.root_rows = e.roots.iter().map(|r| r.len() as i64).sum();
    for m in &e.modules {
        e.outcome.modules.insert(m.slot.clone(), m.sha256.clone());
    }
    for t in plan.tables() {
        e.outcome
            .tables
            .insert(t.to_owned(), TableCounts::default());
    }
    if e.outcome.root_rows > 0 {
        // A person's statements plan the same whatever their keys, so they take generic plans
        // at once instead of five custom plans per backend first. An organization's touch a
        // large share of its tables, where planning for the actual organization pays off.
        if info.subject.kind == SubjectKind::Org {
            e.run(client)?;
        } else {
            super::statements::with_generic_plans(|| e.run(client))?;
        }
    }
    let totals = e
        .outcome
        .tables
        .values()
        .fold(TableCounts::default(), |mut acc, c| {
            acc.add(c);
            acc
        });
    e.outcome.totals = totals;
    Ok(e.outcome)
}

/// Finds and locks (`FOR UPDATE`) the subject's root rows first, so a concurrent writer cannot
/// add a child row under them while the erasure runs.
fn lock_roots(
    client: &mut SpiClient<'_>,
    map: &LoadedMap,
    plan: &Plan,
    info: &RequestInfo<'_>,
) -> ExtResult<(Vec<Vec<i64>>, Vec<i64>)> {
    let mut roots = Vec::new();
    let mut orgs = Vec::new();
    let id_kind = kind_is_id(plan.kind);
    for (i, root) in plan.roots.iter().enumerate() {
        let stmt = prepared(
            client,
            StatementId::Root {
                map_id: map.id,
                kind: plan.kind,
                root: i,
            },
            || root.sql.clone(),
            || {
                let value = if id_kind {
                    pg_sys::INT8OID
                } else {
                    pg_sys::TEXTOID
                };
                vec![PgOid::from(value), PgOid::from(pg_sys::INT8OID)]
            },
        )?;
        let value: DatumWithOid = match &info.subject.value {
            SubjectValue::Id(id) => (*id).into(),
            SubjectValue::Text(t) => t.as_str().into(),
        };
        let mut keys = Vec::new();
        for row in run(client, &stmt, &[value, info.org_id.into()])? {
            if let Some(k) = row.get::<i64>(1)? {
                keys.push(k);
            }
            if let Some(o) = row.get::<i64>(2)? {
                if !orgs.contains(&o) {
                    orgs.push(o);
                }
            }
        }
        roots.push(keys);
    }
    Ok((roots, orgs))
}

/// Active holds on this subject, or on the organization its rows belong to.
fn applicable_holds(
    client: &SpiClient<'_>,
    info: &RequestInfo<'_>,
    orgs: &[i64],
) -> ExtResult<Vec<Hold>> {
    let stmt = prepared(
        client,
        StatementId::Fixed("applicable_holds"),
        || {
            "SELECT id, case_ref, categories,
                    to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
               FROM erasure.legal_holds
              WHERE released_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                AND (subject_hash = $1 OR (subject_kind = 'org' AND org_id = ANY($2)))
              ORDER BY id"
                .into()
        },
        || {
            vec![
                PgOid::from(pg_sys::TEXTOID),
                PgOid::from(pg_sys::INT8ARRAYOID),
            ]
        },
    )?;
    let mut holds = Vec::new();
    for row in client.select(
        &*stmt,
        None,
        &[info.subject_hash.into(), orgs.to_vec().into()],
    )? {
        holds.push(Hold {
            id: row.get::<i64>(1)?.unwrap_or_default(),
            case: row.get::<String>(2)?.unwrap_or_default(),
            categories: row.get::<Vec<String>>(3)?,
            expires_at: row.get::<String>(4)?,
        });
    }
    Ok(holds)
}

/// The root keys as the plan's style takes them: one key (or NULL) per root table, or arrays.
fn root_args(plan: &Plan, roots: &[Vec<i64>]) -> Vec<DatumWithOid<'static>> {
    roots
        .iter()
        .map(|r| match plan.style {
            RootStyle::Scalar => r.first().copied().into(),
            RootStyle::Array => r.clone().into(),
        })
        .collect()
}

fn root_types(plan: &Plan) -> Vec<PgOid> {
    let oid = match plan.style {
        RootStyle::Scalar => pg_sys::INT8OID,
        RootStyle::Array => pg_sys::INT8ARRAYOID,
    };
    vec![PgOid::from(oid); plan.roots.len()]
}

fn text() -> PgOid {
    PgOid::from(pg_sys::TEXTOID)
}

impl Erasure<'_> {
    fn run(&mut self, client: &mut SpiClient<'_>) -> ExtResult<()> {
        let group_verdicts = self.decide_groups()?;
        if self.erases_parents_first(&group_verdicts) {
            return self.run_parents_first(client);
        }
        for (index, step) in self.plan.steps.iter().enumerate() {
            match &step.action {
                StepAction::Detach { .. } => {
                    let stmt = self.statement(client, index, step, StatementKind::Detach)?;
                    let n = run(client, &stmt, &root_args(self.plan, &self.roots))?.len() as i64;
                    self.counts(&step.table).detached += n;
                }
                StepAction::Own if self.map.map.table(&step.table).attrs.is_empty() => {
                    let verdict = group_verdicts[&step.table].clone();
                    self.apply_group(client, index, step, verdict)?;
                }
                StepAction::Own => self.apply_rows(client, index, step)?,
            }
        }
        self.check_deletes(client)
    }

    /// The keys step `index` deleted with its foreign-key checks left out (none if it did not).
    fn deleted_keys(&self, index: usize) -> DatumWithOid<'static> {
        self.checked_deletes
            .get(&index)
            .cloned()
            .unwrap_or_default()
            .into()
    }

    /// The foreign-key checks left out of the steps, in one statement over the deleted keys.
    fn check_deletes(&self, client: &mut SpiClient<'_>) -> ExtResult<()> {
        if self.checked_deletes.is_empty() {
            return Ok(());
        }
        let steps = self.plan.checking_steps();
        let stmt = prepared(
            client,
            StatementId::DeleteCheck {
                map_id: self.map.id,
                kind: self.plan.kind,
                style: self.plan.style,
            },
            || statements::delete_check(self.plan).unwrap_or_default(),
            || match self.plan.deleted_keys {
                DeletedKeys::Returned => vec![PgOid::from(pg_sys::INT8ARRAYOID); steps.len()],
                DeletedKeys::Recorded => Vec::new(),
            },
        )?;
        let args: Vec<DatumWithOid> = match self.plan.deleted_keys {
            DeletedKeys::Returned => steps.iter().map(|i| self.deleted_keys(*i)).collect(),
            DeletedKeys::Recorded => Vec::new(),
        };
        let failed: i32 = first_value(run(client, &stmt, &args)?)?.unwrap_or(0);
        if failed == 0 {
            return Ok(());
        }
        let links = statements::checked_links(self.plan);
        let (_, step, link) = links[failed as usize - 1];
        Err(super::delete_checks::still_referenced(
            link,
            &step.table,
            "erasure",
        ))
    }

    fn counts(&mut self, table: &str) -> &mut TableCounts {
        self.outcome.tables.entry(table.to_owned()).or_default()
    }

    fn statement(
        &self,
        client: &SpiClient<'_>,
        index: usize,
        step: &Step,
        what: StatementKind,
    ) -> ExtResult<std::rc::Rc<pgrx::spi::OwnedPreparedStatement>> {
        let map = &self.map.map;
        let spec = map.table(&step.table);
        let anon = anonymize_values(map, &step.table).len();
        prepared(
            client,
            StatementId::Plan {
                map_id: self.map.id,
                kind: self.plan.kind,
                style: self.plan.style,
                step: index,
                what,
            },
            || statements::build(map, self.plan, step, what),
            || {
                let int8 = PgOid::from(pg_sys::INT8OID);
                let keys = PgOid::from(pg_sys::INT8ARRAYOID);
                let mut t = if what.takes_roots() {
                    root_types(self.plan)
                } else {
                    Vec::new()
                };
                match what {
                    StatementKind::Erase if spec.outbox.is_some() => t.extend([int8, text()]),
                    StatementKind::Erase | StatementKind::Detach => {}
                    StatementKind::SelectAttrs => t.extend([int8, int8]),
                    StatementKind::Keep => {
                        t.extend([int8, text(), text(), text(), text(), text(), text()])
                    }
                    StatementKind::AnonymizeKeep => {
                        t.extend([int8, text(), text(), text(), text(), text(), text()]);
                        t.extend(std::iter::repeat_n(text(), anon));
                    }
                    StatementKind::EraseUnderParents => {
                        t.extend(std::iter::repeat_n(keys, step.parent_keys.len()));
                        if spec.outbox.is_some() {
                            t.extend([int8, text()]);
                        }
                    }
                    StatementKind::EraseKeys => {
                        t.push(keys);
                        if spec.outbox.is_some() {
                            t.extend([int8, text()]);
                        }
                    }
                    StatementKind::AnonymizeKeys => {
                        t.push(keys);
                        t.extend(std::iter::repeat_n(text(), anon));
                    }
                }
                t
            },
        )
    }

    fn call_context(&self) -> CallContext<'_> {
        CallContext {
            now: &self.now,
            request: &self.request_json,
            holds: &self.holds,
        }
    }

    /// Asks every module about `records` and combines their answers, one verdict per record.
    fn decide(&mut self, records: RecordBatch) -> ExtResult<Vec<Verdict>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let n = records.len();
        let mut per_module = Vec::with_capacity(self.modules.len());
        let mut deciding = Vec::with_capacity(self.modules.len());
        let mut input = self.call_context().input();
        for m in self.modules.iter() {
            // ABI: the legal_hold slot is asked only when a hold applies to the request;
            // without one it has no objection, and its call is saved.
            if m.slot == "legal_hold" && self.holds.is_empty() {
                continue;
            }
            per_module.push(m.evaluate(&mut input, &records)?);
            deciding.push(m.clone());
        }
        self.outcome.records_decided += n as i64;
        let verdicts: Vec<Verdict> = (0..n)
            .map(|i| {
                let pairs: Vec<(&erasure_abi::Decision, &str)> = per_module
                    .iter()
                    .zip(&deciding)
                    .map(|(d, m)| (&d[i], m.sha256.as_str()))
                    .collect();
                combine(&pairs)
            })
            .collect();
        let log = &mut self.outcome.decision_log;
        for (i, v) in verdicts.iter().enumerate() {
            if let Some(case) = &v.case_ref {
                if !self.outcome.holds_applied.contains(case) {
                    self.outcome.holds_applied.push(case.clone());
                }
            }
            if log.entries.len() < DECISION_LOG_CAP {
                log.entries.push(LoggedDecision {
                    record: RawValue::from_string(records.record_json(i).to_owned())
                        .map_err(|e| ExtError::Internal(e.to_string()))?,
                    action: v.action.ledger_word().to_owned(),
                    until: v.until,
                });
            } else {
                log.truncated = true;
            }
        }
        Ok(verdicts)
    }

    /// One decision per table for tables whose data map declares no per-row attributes.
    fn decide_groups(&mut self) -> ExtResult<HashMap<String, Verdict>> {
        let tables: Vec<String> = self
            .plan
            .steps
            .iter()
            .filter(|s| {
                s.action == StepAction::Own && self.map.map.table(&s.table).attrs.is_empty()
            })
            .map(|s| s.table.clone())
            .collect();
        let mut records = RecordBatch::default();
        for t in &tables {
            let category = self.map.map.table(t).category.as_str();
            records.push_with(&t.as_str().into(), &category.into(), true, |_| {});
        }
        let verdicts = self.decide(records)?;
        Ok(tables.into_iter().zip(verdicts).collect())
    }

    /// Children of `step` whose kept rows still reference it.
    fn kept_children(&self, step: &Step) -> Vec<(String, String)> {
        step.children
            .iter()
            .filter(|(child, column)| {
                let k = self.kept.get(child).copied().unwrap_or_default();
                let nulled = self.map.map.table(child).anonymize.contains_key(column);
                k.retained_or_held > 0 || (k.anonymized > 0 && !nulled)
            })
            .cloned()
            .collect()
    }

    fn note_kept(&mut self, table: &str, action: Action, n: i64) {
        let k = self.kept.entry(table.to_owned()).or_default();
        match action {
            Action::Retain | Action::Hold => k.retained_or_held += n,
            Action::Anonymize => k.anonymized += n,
            Action::Erase => {}
        }
    }

    fn apply_group(
        &mut self,
        client: &mut SpiClient<'_>,
        index: usize,
        step: &Step,
        verdict: Verdict,
    ) -> ExtResult<()> {
        let table = step.table.clone();
        if verdict.action == Action::Erase {
            let kept_children = self.kept_children(step);
            if !kept_children.is_empty() {
                return self.apply_pinned(client, index, step, &kept_children);
            }
            return self.erase_group(client, index, step, StatementKind::Erase, Vec::new());
        }
        let n = self.keep_group(client, index, step, &verdict)?;
        self.counts(&table).count(verdict.action, n);
        self.note_kept(&table, verdict.action, n);
        Ok(())
    }

    /// Erases every in-scope row of a step (`Erase`, or `EraseUnderParents` with the parents'
    /// deleted keys in `keys`), queueing outbox objects, and keeps the deleted keys where the
    /// step checks foreign keys itself.
    fn erase_group(
        &mut self,
        client: &mut SpiClient<'_>,
        index: usize,
        step: &Step,
        what: StatementKind,
        keys: Vec<DatumWithOid<'static>>,
    ) -> ExtResult<()> {
        let table = step.table.clone();
        let outbox = self.map.map.table(&table).outbox.is_some();
        // A step with checked links returns its deleted keys, or records them in the session's
        // temporary table, which must exist before the statement is prepared.
        let checked = !step.checked_links.is_empty();
        if checked && self.plan.deleted_keys == DeletedKeys::Recorded && !self.keys_table_ready {
            ensure_deleted_keys_table(client)?;
            self.keys_table_ready = true;
        }
        let stmt = self.statement(client, index, step, what)?;
        let mut args = root_args(self.plan, &self.roots);
        args.extend(keys);
        if outbox {
            args.push(self.info.request_id.into());
            args.push(table.as_str().into());
        }
        let rows = if checked && self.batch_checks {
            // PostgreSQL's per-row checks of these links are left out; the check after the
            // last step runs over the keys instead.
            super::delete_checks::without_row_checks(&step.checked_links, || {
                run(client, &stmt, &args)
            })?
        } else {
            run(client, &stmt, &args)?
        };
        let n = match (checked, self.plan.deleted_keys) {
            (false, _) => rows.len() as i64,
            (true, DeletedKeys::Returned) => {
                let mut keys = Vec::with_capacity(rows.len());
                for row in rows {
                    keys.push(row.get::<i64>(1)?.unwrap_or_default());
                }
                let n = keys.len() as i64;
                if self.batch_checks {
                    self.checked_deletes.insert(index, keys);
                }
                n
            }
            // The statement answers how many rows it deleted.
            (true, DeletedKeys::Recorded) => {
                if self.batch_checks {
                    self.checked_deletes.insert(index, Vec::new());
                }
                first_value::<i64>(rows)?.unwrap_or(0)
            }
        };
        if outbox {
            self.outcome.storage_objects_queued += n;
        }
        self.counts(&table).erased += n;
        Ok(())
    }

    /// Whether this request runs its steps parents first ([`Plan::parents_first`]): the rules
    /// erase every row (so no parent is kept for a child), and the extension checks the
    /// foreign keys.
    fn erases_parents_first(&self, group_verdicts: &HashMap<String, Verdict>) -> bool {
        self.batch_checks
            && self.plan.parents_first
            && self.plan.steps.iter().all(|s| {
                group_verdicts
                    .get(&s.table)
                    .is_some_and(|v| v.action == Action::Erase)
            })
    }

    /// The steps parents first, each by the keys its parents' steps deleted.
    fn run_parents_first(&mut self, client: &mut SpiClient<'_>) -> ExtResult<()> {
        for index in (0..self.plan.steps.len()).rev() {
            let step = &self.plan.steps[index];
            let keys = step
                .parent_keys
                .iter()
                .map(|p| self.deleted_keys(*p))
                .collect();
            self.erase_group(client, index, step, StatementKind::EraseUnderParents, keys)?;
        }
        self.check_deletes(client)
    }

    /// Records (and for anonymise, blanks) every in-scope row of a step with one verdict.
    fn keep_group(
        &mut self,
        client: &mut SpiClient<'_>,
        index: usize,
        step: &Step,
        verdict: &Verdict,
    ) -> ExtResult<i64> {
        let what = if verdict.action == Action::Anonymize {
            StatementKind::AnonymizeKeep
        } else {
            StatementKind::Keep
        };
        let stmt = self.statement(client, index, step, what)?;
        let mut args = root_args(self.plan, &self.roots);
        args.extend(self.ledger_args(&step.table, verdict));
        if what == StatementKind::AnonymizeKeep {
            for (_, v) in anonymize_values(&self.map.map, &step.table) {
                args.push(v.into());
            }
        }
        kept_rows(run(client, &stmt, &args)?)
    }

    fn ledger_args(&self, table: &str, v: &Verdict) -> Vec<DatumWithOid<'static>> {
        vec![
            self.info.request_id.into(),
            table.to_owned().into(),
            v.action.ledger_word().to_owned().into(),
            v.until.map(String::from).into(),
            v.basis.clone().into(),
            v.module.clone().into(),
            v.case_ref.clone().into(),
        ]
    }

    /// A parent the rules would erase, some of whose rows are still referenced by kept child
    /// rows: the unreferenced rows go, the referenced ones are kept (anonymised where the data
    /// map says how) for as long as the latest of their children.
    fn apply_pinned(
        &mut self,
        client: &mut SpiClient<'_>,
        index: usize,
        step: &Step,
        kept_children: &[(String, String)],
    ) -> ExtResult<()> {
        let sql = statements::erase_unreferenced(&self.map.map, step, kept_children);
        let erased = client
            .update(sql.as_str(), None, &root_args(self.plan, &self.roots))?
            .len() as i64;
        let children: Vec<String> = kept_children.iter().map(|(c, _)| c.clone()).collect();
        let row = client
            .select(
                "SELECT to_char(max(until) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        coalesce(bool_or(action = 'held'), false), min(case_ref), min(module_sha256)
                   FROM erasure.ledger_chunks WHERE request_id = $1 AND table_name = ANY($2)",
                None,
                &[self.info.request_id.into(), children.clone().into()],
            )?
            .first();
        let until = row
            .get::<String>(1)?
            .map(|text| Until::parse(&text))
            .transpose()
            .map_err(|e| ExtError::Internal(format!("ledger date: {e}")))?;
        let held: bool = row.get(2)?.unwrap_or(false);
        let case_ref: Option<String> = row.get(3)?;
        let module: String = row.get(4)?.unwrap_or_default();
        let spec = self.map.map.table(&step.table);
        let action = if held {
            Action::Hold
        } else if !spec.anonymize.is_empty() {
            Action::Anonymize
        } else {
            Action::Retain
        };
        let verdict = Verdict {
            action,
            until,
            basis: Some(format!(
                "referenced by kept rows of {}",
                children.join(", ")
            )),
            case_ref,
            module,
        };
        let table = step.table.clone();
        let kept = if action == Action::Hold {
            // Held parents stay as they are: the hold preserves evidence.
            let stmt = self.statement(client, index, step, StatementKind::Keep)?;
            let mut args = root_args(self.plan, &self.roots);
            args.extend(self.ledger_args(&table, &verdict));
            kept_rows(run(client, &stmt, &args)?)?
        } else {
            self.keep_group(client, index, step, &verdict)?
        };
        let c = self.counts(&table);
        c.erased += erased;
        c.count(action, kept);
        self.note_kept(&table, action, kept);
        Ok(())
    }

    /// Tables with per-row attributes: rows are read with their attributes one batch at a time
    /// (keyset-paginated, so memory does not grow with the table), decided, and each decision
    /// applied set-based (keys as arrays) before the next batch is read.
    fn apply_rows(
        &mut self,
        client: &mut SpiClient<'_>,
        index: usize,
        step: &Step,
    ) -> ExtResult<()> {
        let table = step.table.clone();
        // Shared by the batch's records (a clone is a reference count, not a copy per row).
        let (record_table, category): (Arc<str>, Arc<str>) = (
            table.as_str().into(),
            self.map.map.table(&table).category.as_str().into(),
        );
        let columns = AttrColumns::of(&self.map.map, &table);
        let batch = guc::DECISION_BATCH_ROWS.get().max(1) as i64;
        let stmt = self.statement(client, index, step, StatementKind::SelectAttrs)?;
        let attrs = columns.json.len() + columns.utc.len();
        let mut utc = Vec::with_capacity(columns.utc.len());
        let mut after = i64::MIN;
        loop {
            let mut args = root_args(self.plan, &self.roots);
            args.push(after.into());
            args.push(batch.into());
            let mut keys = Vec::new();
            // Room for a contact's few rows; a bigger batch grows as it is read.
            let mut records =
                RecordBatch::with_room(batch.min(256) as usize, &record_table, &category, attrs);
            for row in run(client, &stmt, &args)? {
                keys.push(row.get::<i64>(1)?.unwrap_or_default());
                let json = (!columns.json.is_empty()).then(|| row.get::<JsonB>(2));
                let object = match json.transpose()? {
                    Some(Some(JsonB(serde_json::Value::Object(m)))) => Some(m),
                    _ => None,
                };
                utc.clear();
                for i in 0..columns.utc.len() {
                    utc.push(
                        row.get::<TimestampWithTimeZone>(columns.first_utc_column() + i)?
                            .map(|t| t.into_inner()),
                    );
                }
                // Written straight into the batch, as the modules read it: no map per row.
                records.push_with(&record_table, &category, false, |attrs| {
                    for (name, value) in object.iter().flatten() {
                        attrs.value(name, value);
                    }
                    for (name, micros) in columns.utc.iter().zip(&utc) {
                        match micros {
                            Some(micros) => {
                                attrs.plain_str(name, |out| write_timestamptz(out, *micros))
                            }
                            None => attrs.value(name, &serde_json::Value::Null),
                        }
                    }
                });
            }
            let Some(&last) = keys.last() else { break };
            after = last;
            let verdicts = self.decide(records)?;
            self.apply_row_verdicts(client, index, step, &keys, verdicts)?;
            if (keys.len() as i64) < batch {
                break;
            }
        }
        Ok(())
    }

    fn apply_row_verdicts(
        &mut self,
        client: &mut SpiClient<'_>,
        index: usize,
        step: &Step,
        keys: &[i64],
        verdicts: Vec<Verdict>,
    ) -> ExtResult<()> {
        let table = step.table.clone();
        let mut erase_keys = Vec::new();
        let mut anonymize_keys = Vec::new();
        let mut ledger: Vec<(i64, Verdict)> = Vec::new();
        for (key, v) in keys.iter().zip(verdicts) {
            match v.action {
                Action::Erase => erase_keys.push(*key),
                Action::Anonymize => {
                    anonymize_keys.push(*key);
                    ledger.push((*key, v));
                }
                Action::Retain | Action::Hold => ledger.push((*key, v)),
            }
        }
        let outbox = self.map.map.table(&table).outbox.is_some();
        if !erase_keys.is_empty() {
            let stmt = self.statement(client, index, step, StatementKind::EraseKeys)?;
            let mut args: Vec<DatumWithOid> = vec![erase_keys.into()];
            if outbox {
                args.push(self.info.request_id.into());
                args.push(table.as_str().into());
            }
            let n = run(client, &stmt, &args)?.len() as i64;
            self.counts(&table).erased += n;
            if outbox {
                self.outcome.storage_objects_queued += n;
            }
        }
        if !anonymize_keys.is_empty() {
            let stmt = self.statement(client, index, step, StatementKind::AnonymizeKeys)?;
            let mut args: Vec<DatumWithOid> = vec![anonymize_keys.into()];
            for (_, v) in anonymize_values(&self.map.map, &table) {
                args.push(v.into());
            }
            run(client, &stmt, &args)?;
        }
        if !ledger.is_empty() {
            insert_ledger_rows(client, self.info.request_id, &table, &ledger)?;
            for (_, v) in &ledger {
                self.counts(&table).count(v.action, 1);
                self.note_kept(&table, v.action, 1);
            }
        }
        Ok(())
    }
}

/// Readies the session's table of deleted keys ([`statements::DELETED_KEYS_TABLE`]): creates
/// it on a session's first organization erasure (or after `DISCARD TEMP`), else empties it of
/// an earlier erasure's keys in this same transaction (commit empties it otherwise).
fn ensure_deleted_keys_table(client: &mut SpiClient<'_>) -> ExtResult<()> {
    let exists = client
        .select(
            "SELECT to_regclass($1) IS NOT NULL",
            None,
            &[statements::DELETED_KEYS_TABLE.into()],
        )?
        .first()
        .get::<bool>(1)?
        .unwrap_or(false);
    if exists {
        let empty = format!("DELETE FROM {}", statements::DELETED_KEYS_TABLE);
        client.update(empty.as_str(), None, &[])?;
    } else {
        for ddl in statements::deleted_keys_table_ddl() {
            client.update(ddl.as_str(), None, &[])?;
        }
    }
    Ok(())
}

/// Rows a keep statement recorded: the sum of its ledger chunks' sizes (one result row each).
fn kept_rows(chunks: pgrx::spi::SpiTupleTable<'_>) -> ExtResult<i64> {
    let mut n = 0;
    for row in chunks {
        n += i64::from(row.get::<i32>(1)?.unwrap_or(0));
    }
    Ok(n)
}

/// Ledger chunks for row-level verdicts, in one statement: rows with the same verdict share
/// chunks of at most `LEDGER_CHUNK_KEYS` keys.
fn insert_ledger_rows(
    client: &mut SpiClient<'_>,
    request_id: i64,
    table: &str,
    rows: &[(i64, Verdict)],
) -> ExtResult<()> {
    let stmt = prepared(
        client,
        StatementId::Fixed("ledger_rows"),
        || {
            format!(
                "INSERT INTO erasure.ledger_chunks ({})
                 SELECT $1, $2, k.keys, v.a, v.u::timestamptz, v.b, v.s, v.c
                   FROM (SELECT x.chunk, array_agg(x.key ORDER BY x.key) AS keys
                           FROM unnest($3::int[], $4::bigint[]) AS x(chunk, key) GROUP BY x.chunk) k
                   JOIN unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                        WITH ORDINALITY AS v(a, u, b, s, c, chunk) ON v.chunk = k.chunk",
                statements::LEDGER_COLUMNS
            )
        },
        || {
            let ta = PgOid::from(pg_sys::TEXTARRAYOID);
            vec![
                PgOid::from(pg_sys::INT8OID),
                text(),
                PgOid::from(pg_sys::INT4ARRAYOID),
                PgOid::from(pg_sys::INT8ARRAYOID),
                ta,
                ta,
                ta,
                ta,
                ta,
            ]
        },
    )?;
    // Chunk numbers (1-based, as WITH ORDINALITY counts) per key, and one verdict per chunk.
    let mut chunk_of_key: Vec<i32> = Vec::with_capacity(rows.len());
    let mut keys: Vec<i64> = Vec::with_capacity(rows.len());
    let mut chunks: Vec<&Verdict> = Vec::new();
    let mut open: HashMap<&Verdict, (i32, usize)> = HashMap::new();
    for (key, verdict) in rows {
        let slot = open
            .entry(verdict)
            .or_insert((0, statements::LEDGER_CHUNK_KEYS));
        if slot.1 == statements::LEDGER_CHUNK_KEYS {
            chunks.push(verdict);
            *slot = (chunks.len() as i32, 0);
        }
        slot.1 += 1;
        chunk_of_key.push(slot.0);
        keys.push(*key);
    }
    let actions: Vec<String> = chunks
        .iter()
        .map(|v| v.action.ledger_word().to_owned())
        .collect();
    let untils: Vec<Option<String>> = chunks.iter().map(|v| v.until.map(String::from)).collect();
    let bases: Vec<Option<String>> = chunks.iter().map(|v| v.basis.clone()).collect();
    let shas: Vec<String> = chunks.iter().map(|v| v.module.clone()).collect();
    let cases: Vec<Option<String>> = chunks.iter().map(|v| v.case_ref.clone()).collect();
    run(
        client,
        &stmt,
        &[
            request_id.into(),
            table.into(),
            chunk_of_key.into(),
            keys.into(),
            actions.into(),
            untils.into(),
            bases.into(),
            shas.into(),
            cases.into(),
        ],
    )?;
    Ok(())
}
