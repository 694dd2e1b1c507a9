//! The erasure plan of one subject kind: how the subject's root rows are found and locked, which
//! rows of every other table belong to the subject (an SQL predicate over indexed foreign keys),
//! and the children-before-parents order the steps run in. The SQL text of every statement is
//! built here, once per data map and kind; the extension prepares each once per backend.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::datamap::{qualified, DataMap, DeleteCheck, LinkMode};
use crate::error::CoreError;
use crate::sql::{quote_ident, quote_table};
use crate::subject::SubjectKind;

/// Finds and locks the root rows of one root table, returning each row's key and organization.
/// Parameters: `$1` the subject value
/// (bigint for id kinds, text otherwise), `$2` the optional organization (bigint, may be NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootLookup {
    pub table: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// The rows in scope belong to the subject; the rules decide what happens to them.
    Own,
    /// Rows of `table` whose `column` points at the subject's rows of `parent` stay (they belong
    /// to the organization); the link is set to NULL.
    Detach { column: String, parent: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub table: String,
    pub action: StepAction,
    /// A predicate over alias `t` selecting the rows in scope; `$1..$n` are the root key arrays.
    pub scope: String,
    /// Own children of this table in this plan: (child table, link column). A parent row that a
    /// kept child row still references cannot be deleted.
    pub children: Vec<(String, String)>,
    /// Foreign keys into this table that the extension checks itself, once per request, when
    /// it deletes this step's rows: every row that references one of them is in another
    /// step's scope (an own child) or unlinked by a detach step before it. Where the plan
    /// records the deleted keys ([`DeletedKeys::Recorded`]) a row of another organization
    /// may still reference them; the check finds it like PostgreSQL's would.
    pub checked_links: Vec<CheckedLink>,
    /// Parents first (see [`Plan::parents_first`]): the rows in scope by the keys the parents'
    /// steps deleted, over alias `t`; `$R+1..` are those keys, one array per entry of
    /// `parent_keys`.
    pub keyed_scope: String,
    /// The steps (indices) whose deleted keys `keyed_scope` takes, in parameter order.
    pub parent_keys: Vec<usize>,
}

/// A foreign key into a step's table whose referencing rows the plan's other steps remove or
/// unlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLink {
    pub child: String,
    pub column: String,
    /// The constraint's OID and name.
    pub check: DeleteCheck,
}

/// How the root keys are passed to the steps. With one key per root table (the common case:
/// `contact:<id>`, `org:<id>`) scalar parameters let PostgreSQL settle on one generic plan per
/// statement and stop planning; arrays need a custom plan per execution to be estimated well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RootStyle {
    /// `$i` is one key (`bigint`, NULL when the root table has no row).
    Scalar,
    /// `$i` is an array of keys (`bigint[]`).
    Array,
}

impl RootStyle {
    fn test(self, expr: &str, i: usize) -> String {
        match self {
            RootStyle::Scalar => format!("{expr} = ${i}"),
            RootStyle::Array => format!("{expr} = ANY(${i})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: SubjectKind,
    pub style: RootStyle,
    /// `$i` of every step's scope is the array of keys found by `roots[i-1]`.
    pub roots: Vec<RootLookup>,
    pub steps: Vec<Step>,
    /// Whether the steps can also run parents first, each scoped by the keys its parents'
    /// steps deleted (`keyed_scope`) instead of a subquery through them: when the rules erase
    /// everything, this saves reading every parent again for each child. It needs every
    /// foreign key into a parent to be checked by the extension (a child still references
    /// its parent when the parent goes), so a person's plan without detach steps qualifies;
    /// the extension still runs children first whenever a row is kept.
    pub parents_first: bool,
    /// Where the keys of a step with checked links go when it deletes its rows.
    pub deleted_keys: DeletedKeys,
}

/// Where a step that checks its foreign keys itself puts the keys it deleted, for the check
/// after the last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedKeys {
    /// Back to the engine (`RETURNING`): a person's rows, a few dozen per table.
    Returned,
    /// Into the session's temporary table [`crate::statements::DELETED_KEYS_TABLE`], in
    /// arrays of at most [`crate::statements::DELETED_KEYS_CHUNK`]: an organization's rows,
    /// which can be millions, so the backend's memory does not grow with them.
    Recorded,
}

/// How a table is reached in a plan.
#[derive(Debug, Clone)]
enum Source {
    /// Root rows: `key = ANY($i)`.
    Root(usize),
    /// Every row of the organizations in `$1`.
    Tenant,
    /// Rows linked through `column` to in-scope rows of `parent`.
    Link { column: String, parent: String },
}

impl Plan {
    pub fn build(map: &DataMap, kind: SubjectKind, style: RootStyle) -> Result<Plan, CoreError> {
        let doc = &map.doc;
        let roots_spec = doc
            .subjects
            .get(kind.as_str())
            .ok_or(CoreError::NoRootForKind(kind.as_str()))?;

        let mut root_tables: Vec<&str> = Vec::new();
        let mut roots = Vec::new();
        // Several root specs may share a table (e.g. two matching columns): one array per table.
        for spec in roots_spec {
            if !root_tables.contains(&spec.table.as_str()) {
                root_tables.push(&spec.table);
            }
        }
        for table in &root_tables {
            let t = map.table(table);
            let specs: Vec<_> = roots_spec.iter().filter(|r| &r.table == table).collect();
            let value_type = if kind_is_id(kind) { "bigint" } else { "text" };
            let matches: Vec<String> = specs
                .iter()
                .map(|s| {
                    if s.case_insensitive {
                        format!("lower(r.{}) = $1::{value_type}", quote_ident(&s.column))
                    } else {
                        format!("r.{} = $1::{value_type}", quote_ident(&s.column))
                    }
                })
                .collect();
            // `$2` narrows to one organization where the root table has the tenant column.
            let tenant_filter = match &doc.tenant_column {
                Some(tc) if t.links.iter().any(|l| &l.column == tc) => {
                    format!(" AND ($2::bigint IS NULL OR r.{} = $2)", quote_ident(tc))
                }
                _ => String::new(),
            };
            // The organization of each root row, so legal holds on that organization apply.
            let tenant = match &doc.tenant_column {
                Some(tc) if t.links.iter().any(|l| &l.column == tc) => {
                    format!("r.{}", quote_ident(tc))
                }
                Some(_) if is_org_root(doc, table) => format!("r.{}", quote_ident(&t.key)),
                _ => "NULL::bigint".to_owned(),
            };
            roots.push(RootLookup {
                table: table.to_string(),
                sql: format!(
                    "SELECT r.{key}, {tenant} FROM {tbl} r WHERE ({m}){tenant_filter} ORDER BY r.{key} FOR UPDATE OF r",
                    key = quote_ident(&t.key),
                    tbl = quote_table(table),
                    m = matches.join(" OR "),
                ),
            });
        }

        // Which tables are in scope, and through what.
        let tenant_mode = kind == SubjectKind::Org && doc.tenant_column.is_some();
        let mut sources: std::collections::BTreeMap<&str, Vec<Source>> = Default::default();
        for (i, table) in root_tables.iter().enumerate() {
            sources.entry(table).or_default().push(Source::Root(i + 1));
        }
        if tenant_mode {
            let tc = doc.tenant_column.as_deref().unwrap();
            for (name, spec) in &doc.tables {
                let tenant_link = spec
                    .links
                    .iter()
                    .any(|l| l.column == tc && root_tables.contains(&l.parent.as_str()));
                if tenant_link {
                    sources.entry(name).or_default().push(Source::Tenant);
                }
            }
        }
        // Walk own links from parents to children until nothing new is reached; parents come
        // after children in delete_order, so one pass in reverse order reaches every table.
        for name in map.delete_order.iter().rev() {
            if tenant_mode && sources.get(name.as_str()).is_some_and(|s| !s.is_empty()) {
                continue; // the tenant column already scopes it, whatever else links it
            }
            for link in &map.table(name).links {
                if link.mode == LinkMode::Own && sources.contains_key(link.parent.as_str()) {
                    sources.entry(name).or_default().push(Source::Link {
                        column: link.column.clone(),
                        parent: link.parent.clone(),
                    });
                }
            }
        }

        let scope_of = |table: &str, alias: &str| scope(map, &sources, style, table, alias, 0);
        let mut steps = Vec::new();
        for name in &map.delete_order {
            let spec = map.table(name);
            if sources.contains_key(name.as_str()) {
                let children: Vec<(String, String)> = doc
                    .tables
                    .iter()
                    .filter(|(child, _)| sources.contains_key(child.as_str()))
                    .flat_map(|(child, cspec)| {
                        cspec
                            .links
                            .iter()
                            .filter(|l| l.mode == LinkMode::Own && &l.parent == name)
                            .map(move |l| (child.clone(), l.column.clone()))
                    })
                    .collect();
                let checked_links = checked_links(map, name, &children);
                steps.push(Step {
                    table: name.clone(),
                    action: StepAction::Own,
                    scope: scope_of(name, "t"),
                    children,
                    checked_links,
                    keyed_scope: String::new(),
                    parent_keys: Vec::new(),
                });
            }
            for link in &spec.links {
                if link.mode == LinkMode::Detach && sources.contains_key(link.parent.as_str()) {
                    let parent_scope = scope_of(&link.parent, "p");
                    let pkey = quote_ident(&map.table(&link.parent).key);
                    steps.push(Step {
                        table: name.clone(),
                        action: StepAction::Detach {
                            column: link.column.clone(),
                            parent: link.parent.clone(),
                        },
                        scope: format!(
                            "t.{} IN (SELECT p.{pkey} FROM {} p WHERE {parent_scope})",
                            quote_ident(&link.column),
                            quote_table(&link.parent)
                        ),
                        children: Vec::new(),
                        checked_links: Vec::new(),
                        keyed_scope: String::new(),
                        parent_keys: Vec::new(),
                    });
                }
            }
        }
        let parents_first = !tenant_mode
            && steps
                .iter()
                .all(|s| s.action == StepAction::Own && s.checked_links.len() == s.children.len());
        if parents_first {
            keyed_scopes(map, &sources, style, roots.len(), &mut steps);
        }
        Ok(Plan {
            kind,
            style,
            roots,
            steps,
            parents_first,
            deleted_keys: if tenant_mode {
                DeletedKeys::Recorded
            } else {
                DeletedKeys::Returned
            },
        })
    }

    /// The steps that check foreign keys themselves, in order: the keys a step deletes are
    /// parameter `$n` of [`crate::statements::delete_check`] for the n-th of them.
    pub fn checking_steps(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| !self.steps[i].checked_links.is_empty())
            .collect()
    }

    /// Tables this plan touches, in step order, each once.
    pub fn tables(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.steps
            .iter()
            .map(|s| s.table.as_str())
            .filter(|t| seen.insert(*t))
            .collect()
    }
}

/// Fills every step's `keyed_scope`: its root keys (`$i`) or the deleted keys of the parents
/// it is linked to (`$R+1..`, an array each; the root keys for a parent that only they
/// reach), joined by OR.
fn keyed_scopes(
    map: &DataMap,
    sources: &std::collections::BTreeMap<&str, Vec<Source>>,
    style: RootStyle,
    roots: usize,
    steps: &mut [Step],
) {
    let step_of: std::collections::BTreeMap<String, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.table.clone(), i))
        .collect();
    for step in steps.iter_mut() {
        let key = quote_ident(&map.table(&step.table).key);
        let mut preds = Vec::new();
        for source in &sources[step.table.as_str()] {
            match source {
                Source::Root(i) => preds.push(style.test(&format!("t.{key}"), *i)),
                // A parent reached by its root keys alone loses exactly those: the child
                // tests them (a scalar where there is one key), as children first does.
                Source::Link { column, parent } => match sources[parent.as_str()].as_slice() {
                    [Source::Root(i)] => {
                        preds.push(style.test(&format!("t.{}", quote_ident(column)), *i))
                    }
                    _ => {
                        step.parent_keys.push(step_of[parent]);
                        preds.push(format!(
                            "t.{} = ANY(${})",
                            quote_ident(column),
                            roots + step.parent_keys.len()
                        ));
                    }
                },
                // Not in a person's plan.
                Source::Tenant => {}
            }
        }
        step.keyed_scope = join_or(&preds);
    }
}

/// Every foreign key into `table` behind a data-map link (own or detach) whose only work on a
/// parent's delete is a check: what purging `table`'s kept rows checks itself, once per
/// batch, over the keys the batch deleted.
pub fn links_into(map: &DataMap, table: &str) -> Vec<CheckedLink> {
    let children: Vec<(String, String)> = map
        .doc
        .tables
        .iter()
        .flat_map(|(child, spec)| {
            spec.links
                .iter()
                .filter(|l| l.mode == LinkMode::Own && l.parent == table)
                .map(move |l| (child.clone(), l.column.clone()))
        })
        .collect();
    checked_links(map, table, &children)
}

/// The foreign keys into `table` that a plan makes redundant per row: those of its own
/// children (in scope through the link, so erased or kept before it, and a kept child pins
/// its parent) and of detach links (unlinked by a step before it), where PostgreSQL's only
/// work on a parent's delete is a check.
fn checked_links(map: &DataMap, table: &str, children: &[(String, String)]) -> Vec<CheckedLink> {
    let detached = map.doc.tables.iter().flat_map(|(child, spec)| {
        spec.links
            .iter()
            .filter(|l| l.mode == LinkMode::Detach && l.parent == table)
            .map(move |l| (child.clone(), l.column.clone()))
    });
    children
        .iter()
        .cloned()
        .chain(detached)
        .filter_map(|(child, column)| {
            let check = map.delete_checks.get(&(child.clone(), column.clone()))?;
            Some(CheckedLink {
                child,
                column,
                check: check.clone(),
            })
        })
        .collect()
}

fn is_org_root(doc: &crate::datamap::DataMapDoc, table: &str) -> bool {
    doc.subjects
        .get("org")
        .is_some_and(|roots| roots.iter().any(|r| r.table == table))
}

/// Whether subjects of this kind are matched by a bigint id (else by text).
pub fn kind_is_id(kind: SubjectKind) -> bool {
    matches!(
        kind,
        SubjectKind::User | SubjectKind::Contact | SubjectKind::Org
    )
}

/// The predicate selecting `table`'s in-scope rows, over `alias`. Direct sources (root keys,
/// the tenant column, a link to a root-only parent) become `= ANY($i)` tests that the planner
/// turns into index scans (a BitmapOr for several); a link through a deeper parent becomes an
/// `IN (subquery)` semi-join; several sources that need subqueries become a UNION of keys.
fn scope(
    map: &DataMap,
    sources: &std::collections::BTreeMap<&str, Vec<Source>>,
    style: RootStyle,
    table: &str,
    alias: &str,
    depth: usize,
) -> String {
    let spec = map.table(table);
    let key = quote_ident(&spec.key);
    let mut direct = Vec::new();
    let mut nested = Vec::new();
    for source in &sources[table] {
        match source {
            Source::Root(i) => direct.push(style.test(&format!("{alias}.{key}"), *i)),
            Source::Tenant => {
                let tc = map.doc.tenant_column.as_deref().unwrap();
                direct.push(style.test(&format!("{alias}.{}", quote_ident(tc)), 1));
            }
            Source::Link { column, parent } => {
                let col = quote_ident(column);
                let parent_sources = &sources[parent.as_str()];
                if let [Source::Root(i)] = parent_sources.as_slice() {
                    direct.push(style.test(&format!("{alias}.{col}"), *i));
                } else {
                    let inner = format!("s{}", depth + 1);
                    let pkey = quote_ident(&map.table(parent).key);
                    nested.push(format!(
                        "{alias}.{col} IN (SELECT {inner}.{pkey} FROM {} {inner} WHERE {})",
                        quote_table(parent),
                        scope(map, sources, style, parent, &inner, depth + 1)
                    ));
                }
            }
        }
    }
    match (direct.len(), nested.len()) {
        (_, 0) => join_or(&direct),
        (0, 1) => nested.pop().unwrap(),
        _ => {
            // Re-select the keys per source so each branch keeps its own index path.
            let inner = format!("u{}", depth + 1);
            let branches: Vec<String> = direct
                .iter()
                .chain(nested.iter())
                .map(|pred| {
                    let pred = rebase(pred, alias, &inner);
                    format!(
                        "SELECT {inner}.{key} FROM {} {inner} WHERE {pred}",
                        quote_table(table)
                    )
                })
                .collect();
            format!("{alias}.{key} IN ({})", branches.join(" UNION "))
        }
    }
}

fn join_or(preds: &[String]) -> String {
    if preds.len() == 1 {
        preds[0].clone()
    } else {
        format!("({})", preds.join(" OR "))
    }
}

/// Renames the outer alias at the head of a predicate (`alias.` prefix) to another alias.
fn rebase(pred: &str, from: &str, to: &str) -> String {
    let prefix = format!("{from}.");
    match pred.strip_prefix(&prefix) {
        Some(rest) => {
            let mut s = String::new();
            let _ = write!(s, "{to}.{rest}");
            s
        }
        None => pred.to_owned(),
    }
}

/// The catalog name of a plan table, for messages.
pub fn catalog_name(table: &str) -> String {
    qualified(table)
}
