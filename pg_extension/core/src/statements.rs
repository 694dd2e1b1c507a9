//! The SQL text of every statement an erasure runs, built from a plan step. Each is prepared once
//! per backend and reused; values are always parameters, identifiers always quoted.
//!
//! Parameter layout: `$1..$R` are the plan's root key arrays (`bigint[]`), then the statement's own
//! parameters, listed with each builder.

use crate::attrs::AttrColumns;
use crate::datamap::DataMap;
use crate::plan::{CheckedLink, DeletedKeys, Plan, Step, StepAction};
use crate::sql::{quote_ident, quote_literal, quote_table};

/// The extension's ledger of kept rows, `erasure.ledger_chunks`: kept rows with the same verdict
/// share a row, their keys in an array of at most [`LEDGER_CHUNK_KEYS`], so recording and
/// purging cost one ledger row per chunk, not per kept row (`erasure.ledger` shows one row per
/// kept row).
pub const LEDGER_COLUMNS: &str =
    "request_id, table_name, row_keys, action, until, basis, module_sha256, case_ref";

/// Most keys in one ledger chunk (the table's CHECK says the same): a purge batch deletes
/// whole chunks, so this bounds how far a batch can overshoot `erasure.purge_batch_rows`.
pub const LEDGER_CHUNK_KEYS: usize = 1000;

/// The statements of one step; which ones an erasure runs depends on the rules' decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatementKind {
    /// Group erase. Own params: request id, table name (only when the table has an outbox).
    /// Returns the deleted rows' keys where the step checks foreign keys itself (see
    /// [`delete_check`]), else nothing.
    Erase,
    /// Group retain/hold: ledger rows for every row in scope. Own params: request id, table,
    /// action, until, basis, module sha256, case ref.
    Keep,
    /// Group anonymise plus ledger rows. Own params: as `Keep`, then one per non-NULL replacement.
    AnonymizeKeep,
    /// Detach: null the link column of rows in scope. No own params.
    Detach,
    /// Per-row attributes: key and the attribute columns as [`AttrColumns`] lays them out,
    /// one keyset page at a time. Own params: the last key of the previous page, the page size.
    SelectAttrs,
    /// Row-level erase by keys. Params: `$1` keys, `$2` request id, `$3` table (outbox tables).
    EraseKeys,
    /// Row-level anonymise by keys. Params: `$1` keys, then one per non-NULL replacement.
    AnonymizeKeys,
    /// Group erase parents first ([`Plan::parents_first`]): like `Erase`, scoped by
    /// `keyed_scope`. Own params: the parents' deleted keys (one `bigint[]` per entry of
    /// `parent_keys`), then request id and table name (outbox tables).
    EraseUnderParents,
}

impl StatementKind {
    /// Whether the statement's parameters start with the plan's root arrays.
    pub fn takes_roots(self) -> bool {
        !matches!(
            self,
            StatementKind::EraseKeys | StatementKind::AnonymizeKeys
        )
    }
}

/// Builds the SQL of `kind` for `step` of `plan`.
pub fn build(map: &DataMap, plan: &Plan, step: &Step, kind: StatementKind) -> String {
    let spec = map.table(&step.table);
    let tbl = quote_table(&step.table);
    let key = quote_ident(&spec.key);
    let r = plan.roots.len();
    let scope = &step.scope;
    match kind {
        StatementKind::Erase => group_erase(map, plan, step, scope, r),
        StatementKind::EraseUnderParents => group_erase(
            map,
            plan,
            step,
            &step.keyed_scope,
            r + step.parent_keys.len(),
        ),
        StatementKind::Keep => format!(
            "WITH k AS (SELECT t.{key} AS key FROM {tbl} t WHERE {scope}) {}",
            ledger_chunks_insert(r)
        ),
        StatementKind::AnonymizeKeep => format!(
            "WITH k AS (UPDATE {tbl} t SET {} WHERE {scope} RETURNING t.{key} AS key) {}",
            set_list(map, &step.table, r + 8),
            ledger_chunks_insert(r)
        ),
        StatementKind::Detach => match &step.action {
            StepAction::Detach { column, .. } => {
                format!(
                    "UPDATE {tbl} t SET {c} = NULL WHERE {scope}",
                    c = quote_ident(column)
                )
            }
            StepAction::Own => unreachable!("detach statement of an own step"),
        },
        StatementKind::SelectAttrs => {
            let columns = AttrColumns::of(map, &step.table);
            let mut select = vec![format!("t.{key}")];
            if !columns.json.is_empty() {
                let pairs: Vec<String> = columns
                    .json
                    .iter()
                    .map(|a| format!("{}, t.{}", quote_literal(a), quote_ident(a)))
                    .collect();
                select.push(format!("jsonb_build_object({})", pairs.join(", ")));
            }
            select.extend(columns.utc.iter().map(|a| format!("t.{}", quote_ident(a))));
            format!(
                "SELECT {} FROM {tbl} t WHERE {scope} AND t.{key} > ${} ORDER BY t.{key} LIMIT ${}",
                select.join(", "),
                r + 1,
                r + 2
            )
        }
        StatementKind::EraseKeys => match &spec.outbox {
            Some(col) => format!(
                "WITH d AS (DELETE FROM {tbl} t WHERE t.{key} = ANY($1) RETURNING t.{c}) \
                 INSERT INTO erasure.storage_outbox (request_id, table_name, object_key) \
                 SELECT $2, $3, d.{c} FROM d",
                c = quote_ident(col)
            ),
            None => format!("DELETE FROM {tbl} t WHERE t.{key} = ANY($1)"),
        },
        StatementKind::AnonymizeKeys => format!(
            "UPDATE {tbl} t SET {} WHERE t.{key} = ANY($1)",
            set_list(map, &step.table, 2)
        ),
    }
}

/// The session's temporary table where an organization's erasure records the keys its
/// steps with checked links deleted, `(table_name, keys)`, emptied at every commit.
pub const DELETED_KEYS_TABLE: &str = "pg_temp.erasure_deleted_keys";

/// Most keys in one row of [`DELETED_KEYS_TABLE`]: an organization's keys are many rows of
/// bounded arrays, never one array the size of the organization.
pub const DELETED_KEYS_CHUNK: usize = 10_000;

/// The statements that create [`DELETED_KEYS_TABLE`]. Its arrays are stored uncompressed:
/// compressing keys saves little and costs time on every chunk.
pub fn deleted_keys_table_ddl() -> [String; 2] {
    [
        format!(
            "CREATE TEMPORARY TABLE {DELETED_KEYS_TABLE} \
             (table_name text NOT NULL, keys bigint[] NOT NULL) ON COMMIT DELETE ROWS"
        ),
        format!("ALTER TABLE {DELETED_KEYS_TABLE} ALTER COLUMN keys SET STORAGE EXTERNAL"),
    ]
}

/// A group erase of `step`'s rows in `scope`, whose own parameters (the outbox's request id
/// and table) follow `$own`. Where the step checks foreign keys itself, the deleted keys
/// come back as rows ([`DeletedKeys::Returned`]) or go to [`DELETED_KEYS_TABLE`] and the
/// statement answers how many rows it deleted ([`DeletedKeys::Recorded`]).
fn group_erase(map: &DataMap, plan: &Plan, step: &Step, scope: &str, own: usize) -> String {
    let spec = map.table(&step.table);
    let tbl = quote_table(&step.table);
    let key = quote_ident(&spec.key);
    let delete = format!("DELETE FROM {tbl} t WHERE {scope}");
    // The outbox column, and the insert that queues the deleted rows' objects from `d`.
    let outbox = spec.outbox.as_ref().map(|col| {
        let col = quote_ident(col);
        let insert = format!(
            "INSERT INTO erasure.storage_outbox (request_id, table_name, object_key) \
             SELECT ${}, ${}, d.{col} FROM d",
            own + 1,
            own + 2
        );
        (col, insert)
    });
    let keys = !step.checked_links.is_empty();
    match (outbox, keys, plan.deleted_keys) {
        (None, false, _) => delete,
        (None, true, DeletedKeys::Returned) => format!("{delete} RETURNING t.{key}"),
        (Some((col, insert)), false, _) => {
            format!("WITH d AS ({delete} RETURNING t.{col}) {insert}")
        }
        (Some((col, insert)), true, DeletedKeys::Returned) => format!(
            "WITH d AS ({delete} RETURNING t.{key}, t.{col}), o AS ({insert}) SELECT d.{key} FROM d"
        ),
        (outbox, true, DeletedKeys::Recorded) => {
            let (col, insert) = match outbox {
                Some((col, insert)) => (format!(", t.{col}"), format!(", o AS ({insert})")),
                None => (String::new(), String::new()),
            };
            format!(
                "WITH d AS ({delete} RETURNING t.{key}{col}){insert}, \
                 k AS (INSERT INTO {DELETED_KEYS_TABLE} (table_name, keys) \
                 SELECT {name}, array_agg(n.key) FROM (SELECT d.{key} AS key, \
                 (row_number() OVER ()) / {DELETED_KEYS_CHUNK} AS chunk FROM d) n GROUP BY n.chunk) \
                 SELECT count(*) FROM d",
                name = quote_literal(&step.table)
            )
        }
    }
}

/// The replacement values of a table's anonymisation, in the order their parameters take.
pub fn anonymize_values(map: &DataMap, table: &str) -> Vec<(String, String)> {
    map.table(table)
        .anonymize
        .iter()
        .filter_map(|(col, v)| v.clone().map(|v| (col.clone(), v)))
        .collect()
}

fn set_list(map: &DataMap, table: &str, first_param: usize) -> String {
    let spec = map.table(table);
    if spec.anonymize.is_empty() {
        // Nothing to blank: a no-op assignment keeps the statement valid and still locks the row.
        return format!("{k} = t.{k}", k = quote_ident(&spec.key));
    }
    let mut next = first_param;
    spec.anonymize
        .iter()
        .map(|(col, v)| match v {
            None => format!("{} = NULL", quote_ident(col)),
            Some(_) => {
                let s = format!(
                    "{} = ${next}::{}",
                    quote_ident(col),
                    map.column_type(table, col)
                );
                next += 1;
                s
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ledger chunks for the keys of CTE `k`, all with the verdict in params `$r+1..$r+7`
/// (request id, table, action, until, basis, module sha256, case ref). Returns one row per
/// chunk with its number of keys.
fn ledger_chunks_insert(r: usize) -> String {
    format!(
        "INSERT INTO erasure.ledger_chunks ({LEDGER_COLUMNS}) \
         SELECT ${}, ${}, array_agg(c.key ORDER BY c.key), ${}, ${}::timestamptz, ${}, ${}, ${} \
           FROM (SELECT k.key, (row_number() OVER (ORDER BY k.key) - 1) / {LEDGER_CHUNK_KEYS} AS chunk FROM k) c \
          GROUP BY c.chunk \
         RETURNING row_count",
        r + 1,
        r + 2,
        r + 3,
        r + 4,
        r + 5,
        r + 6,
        r + 7
    )
}

/// Deletes the rows of a step that no kept child row references any more, for a parent whose
/// children were partly kept. No own params beyond the roots.
pub fn erase_unreferenced(
    map: &DataMap,
    step: &Step,
    kept_children: &[(String, String)],
) -> String {
    let spec = map.table(&step.table);
    let key = quote_ident(&spec.key);
    let guards: Vec<String> = kept_children
        .iter()
        .map(|(child, col)| {
            format!(
                "NOT EXISTS (SELECT 1 FROM {} c WHERE c.{} = t.{key})",
                quote_table(child),
                quote_ident(col)
            )
        })
        .collect();
    format!(
        "DELETE FROM {} t WHERE {} AND {}",
        quote_table(&step.table),
        step.scope,
        guards.join(" AND ")
    )
}

/// The one statement that stands in for PostgreSQL's per-row checks of the plan's checked
/// links, run after the steps: `$n` is the array of keys the n-th of [`Plan::checking_steps`]
/// deleted. It answers the 1-based position (in [`checked_links`] order) of the first link
/// through which a row still references a deleted row, or 0. `None` when nothing is checked.
///
/// Run in READ COMMITTED with a snapshot taken after the deletes, it sees what PostgreSQL's
/// own check would: a writer that had locked a parent row to reference it made the delete
/// wait for its commit, and one that comes later waits for this transaction and then fails
/// its own check.
///
/// Where the plan records its deleted keys ([`DeletedKeys::Recorded`]) the statement takes
/// no parameters: it probes each child with the chunks of [`DELETED_KEYS_TABLE`].
pub fn delete_check(plan: &Plan) -> Option<String> {
    first_referenced(checked_links(plan).into_iter().map(|(param, step, link)| {
        match plan.deleted_keys {
            DeletedKeys::Returned => referencing(link, &format!("${param}")),
            DeletedKeys::Recorded => format!(
                "SELECT count(*) FROM {DELETED_KEYS_TABLE} k, ONLY {} c \
                     WHERE k.table_name = {} AND c.{} = ANY(k.keys)",
                quote_table(&link.child),
                quote_literal(&step.table),
                quote_ident(&link.column)
            ),
        }
    }))
}

/// The check of `links` over one array of deleted keys, `$1`: the 1-based position of the
/// first link through which a row still references one of them, or 0. `None` without links.
pub fn keys_check(links: &[CheckedLink]) -> Option<String> {
    first_referenced(links.iter().map(|link| referencing(link, "$1")))
}

/// How many rows of `link`'s child reference one of the keys in the array `keys`.
fn referencing(link: &CheckedLink, keys: &str) -> String {
    format!(
        "SELECT count(*) FROM ONLY {} c WHERE c.{} = ANY({keys})",
        quote_table(&link.child),
        quote_ident(&link.column)
    )
}

/// `SELECT CASE WHEN (<first count>) > 0 THEN 1 WHEN … ELSE 0 END`; `None` for no queries.
///
/// Counts, not `EXISTS`: the planner costs an `EXISTS` for its first row, and on a column
/// with few distinct values (an organization's id) it expects one after a few rows of a
/// sequential scan, which then reads the whole table to find none. A count is costed in
/// full, so it probes the index, as PostgreSQL's own check does; only a failing check
/// counts more than nothing.
fn first_referenced(queries: impl Iterator<Item = String>) -> Option<String> {
    let tests: Vec<String> = queries
        .enumerate()
        .map(|(pos, query)| format!("WHEN ({query}) > 0 THEN {}", pos + 1))
        .collect();
    (!tests.is_empty()).then(|| format!("SELECT CASE {} ELSE 0 END", tests.join(" ")))
}

/// Every checked link of the plan, in the order [`delete_check`] numbers them, with the
/// parameter that carries its step's deleted keys and the step.
pub fn checked_links(plan: &Plan) -> Vec<(usize, &Step, &CheckedLink)> {
    plan.checking_steps()
        .into_iter()
        .enumerate()
        .flat_map(|(n, i)| {
            let step = &plan.steps[i];
            step.checked_links.iter().map(move |l| (n + 1, step, l))
        })
        .collect()
}

/// What an erasure of `plan`'s subject kind runs, for people and tools (`erasure.explain_plan`):
/// the root look-ups, then each step with the statement that erases its rows (or, for a detach
/// step, unlinks them) when the rules keep none of them — parents first where the plan can
/// (`order`; each step's `parent_keys` name the steps whose deleted keys it takes as `$R+1..`),
/// else children first with its scope — and the foreign keys it checks itself, then the
/// statement that checks them.
pub fn describe(map: &DataMap, plan: &Plan) -> serde_json::Value {
    let order: Vec<usize> = if plan.parents_first {
        (0..plan.steps.len()).rev().collect()
    } else {
        (0..plan.steps.len()).collect()
    };
    let steps: Vec<serde_json::Value> = order
        .into_iter()
        .map(|i| {
            let s = &plan.steps[i];
            let action = match &s.action {
                StepAction::Own => serde_json::json!("own"),
                StepAction::Detach { column, parent } => {
                    serde_json::json!({"detach": column, "from": parent})
                }
            };
            let (kind, scope) = match s.action {
                StepAction::Own if plan.parents_first => {
                    (StatementKind::EraseUnderParents, &s.keyed_scope)
                }
                StepAction::Own => (StatementKind::Erase, &s.scope),
                StepAction::Detach { .. } => (StatementKind::Detach, &s.scope),
            };
            let mut step = serde_json::json!({
                "table": s.table,
                "action": action,
                "scope": scope,
                "sql": build(map, plan, s, kind),
            });
            if plan.parents_first {
                step["parent_keys"] = s
                    .parent_keys
                    .iter()
                    .map(|p| serde_json::json!(plan.steps[*p].table))
                    .collect();
            }
            if !s.checked_links.is_empty() {
                step["checked_foreign_keys"] = s
                    .checked_links
                    .iter()
                    .map(|l| serde_json::json!(l.check.name))
                    .collect();
            }
            step
        })
        .collect();
    let roots: Vec<serde_json::Value> = plan
        .roots
        .iter()
        .map(|r| serde_json::json!({"table": r.table, "sql": r.sql}))
        .collect();
    serde_json::json!({
        "subject_kind": plan.kind.as_str(),
        "order": if plan.parents_first { "parents first" } else { "children first" },
        "roots": roots,
        "steps": steps,
        "delete_check": delete_check(plan),
    })
}
