//! The data map: which table holds which category of personal data, how its rows reach each
//! kind of subject (foreign-key links), what per-row attributes the rules see, and how each
//! column is anonymised. Parsed from JSON, then validated against catalog facts so a bad map is
//! refused at load, not in the middle of somebody's erasure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{invalid, CoreError};
use crate::sql::split_table;
use crate::subject::SubjectKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DataMapDoc {
    pub version: u32,
    /// The column naming a row's organization; the `org` subject reaches every table through it.
    #[serde(default)]
    pub tenant_column: Option<String>,
    pub subjects: BTreeMap<String, Vec<RootSpec>>,
    pub tables: BTreeMap<String, TableSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RootSpec {
    pub table: String,
    pub column: String,
    #[serde(default)]
    pub case_insensitive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub key: String,
    pub category: String,
    #[serde(default)]
    pub personal_data: Vec<String>,
    #[serde(default)]
    pub attrs: Vec<String>,
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Column → replacement (`null` sets SQL NULL).
    #[serde(default)]
    pub anonymize: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub outbox: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// The child row belongs to whoever owns the parent row.
    #[default]
    Own,
    /// The child row belongs to the organization: erasing the parent only nulls the link.
    Detach,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub column: String,
    pub parent: String,
    #[serde(default)]
    pub mode: LinkMode,
}

/// A validated data map: every name resolved against the catalog, tables in a
/// children-before-parents order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMap {
    pub doc: DataMapDoc,
    /// Map table names (as written in the map), children before parents.
    pub delete_order: Vec<String>,
    /// Catalog type of each anonymised / attribute column, by (table, column).
    pub column_types: BTreeMap<(String, String), String>,
    /// The foreign keys behind links, by (child table, link column), whose only work on a
    /// parent's delete is a check ([`crate::catalog::ForeignKey::delete_check_only`]).
    pub delete_checks: BTreeMap<(String, String), DeleteCheck>,
}

/// A foreign key PostgreSQL checks per deleted parent row, which an erasure that removes the
/// referencing rows itself may check once, set-based, instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteCheck {
    /// The constraint's OID: its per-row check trigger is the one to leave out.
    pub oid: u32,
    /// The constraint's name, for the error that reports a row still referencing.
    pub name: String,
}

/// The catalog name (`schema.table`) of a table as the map writes it.
pub fn qualified(name: &str) -> String {
    let (s, t) = split_table(name);
    format!("{s}.{t}")
}

impl DataMapDoc {
    pub fn from_json(value: &serde_json::Value) -> Result<DataMapDoc, CoreError> {
        serde_json::from_value(value.clone()).map_err(|e| invalid(e.to_string()))
    }

    /// The tables the catalog must describe for validation (`schema.table`).
    pub fn catalog_tables(&self) -> Vec<String> {
        self.tables.keys().map(|t| qualified(t)).collect()
    }
}

impl DataMap {
    pub fn validate(doc: DataMapDoc, catalog: &Catalog) -> Result<DataMap, CoreError> {
        if doc.version != 1 {
            return Err(invalid(format!(
                "version {} is not supported (expected 1)",
                doc.version
            )));
        }
        if doc.tables.is_empty() {
            return Err(invalid("no tables"));
        }
        let mut column_types = BTreeMap::new();
        let mut delete_checks = BTreeMap::new();
        let by_qualified: BTreeMap<String, &String> =
            doc.tables.keys().map(|t| (qualified(t), t)).collect();

        for (name, spec) in &doc.tables {
            let q = qualified(name);
            let facts = catalog
                .tables
                .get(&q)
                .ok_or_else(|| invalid(format!("table {name} does not exist")))?;
            let column = |col: &str, what: &str| {
                facts
                    .columns
                    .get(col)
                    .ok_or_else(|| invalid(format!("{what} column {name}.{col} does not exist")))
            };
            let key = column(&spec.key, "key")?;
            if key.type_name != "bigint" || facts.primary_key != [spec.key.clone()] {
                return Err(invalid(format!(
                    "key {name}.{} must be the table's single-column bigint primary key",
                    spec.key
                )));
            }
            if spec.category.trim().is_empty() {
                return Err(invalid(format!("table {name} has an empty category")));
            }
            for col in &spec.personal_data {
                column(col, "personal_data")?;
            }
            for col in &spec.attrs {
                let c = column(col, "attribute")?;
                column_types.insert((name.clone(), col.clone()), c.type_name.clone());
            }
            for (col, replacement) in &spec.anonymize {
                let c = column(col, "anonymize")?;
                if replacement.is_none() && c.not_null {
                    return Err(invalid(format!(
                        "anonymize sets {name}.{col} to NULL but the column is NOT NULL"
                    )));
                }
                if col == &spec.key {
                    return Err(invalid(format!(
                        "anonymize must not change the key {name}.{col}"
                    )));
                }
                column_types.insert((name.clone(), col.clone()), c.type_name.clone());
            }
            if let Some(col) = &spec.outbox {
                column(col, "outbox")?;
            }
            let mut linked = BTreeSet::new();
            for link in &spec.links {
                let c = column(&link.column, "link")?;
                let parent = doc.tables.get(&link.parent).ok_or_else(|| {
                    invalid(format!(
                        "link {name}.{} names parent {} which is not in the data map",
                        link.column, link.parent
                    ))
                })?;
                let fk = catalog.foreign_keys.iter().find(|fk| {
                    fk.child == q
                        && fk.child_columns == [link.column.clone()]
                        && fk.parent == qualified(&link.parent)
                        && fk.parent_columns == [parent.key.clone()]
                });
                let Some(fk) = fk else {
                    return Err(invalid(format!(
                        "link {name}.{} -> {}.{} does not join: no such foreign key",
                        link.column, link.parent, parent.key
                    )));
                };
                if fk.delete_check_only && fk.oid != 0 {
                    delete_checks.insert(
                        (name.clone(), link.column.clone()),
                        DeleteCheck {
                            oid: fk.oid,
                            name: fk.name.clone(),
                        },
                    );
                }
                if link.mode == LinkMode::Detach && c.not_null {
                    return Err(invalid(format!(
                        "detach link {name}.{} must be a nullable column",
                        link.column
                    )));
                }
                if !linked.insert(link.column.clone()) {
                    return Err(invalid(format!(
                        "link {name}.{} is listed twice",
                        link.column
                    )));
                }
            }
        }

        // Every foreign key into a mapped table must be a link, or an erasure would
        // fail (or worse, be incomplete) on a reference the map does not know.
        for fk in &catalog.foreign_keys {
            if !by_qualified.contains_key(&fk.parent) {
                continue;
            }
            let Some(child) = by_qualified.get(&fk.child) else {
                return Err(invalid(format!(
                    "table {} references mapped table {} (constraint {}) but is not in the data map",
                    fk.child, fk.parent, fk.name
                )));
            };
            let spec = &doc.tables[*child];
            let known = fk.child_columns.len() == 1
                && spec.links.iter().any(|l| l.column == fk.child_columns[0]);
            if !known {
                return Err(invalid(format!(
                    "foreign key {} of {} ({}) is not among the table's links",
                    fk.name,
                    child,
                    fk.child_columns.join(", ")
                )));
            }
        }

        for (kind, roots) in &doc.subjects {
            SubjectKind::parse(kind)
                .ok_or_else(|| invalid(format!("unknown subject kind '{kind}'")))?;
            if roots.is_empty() {
                return Err(invalid(format!("subject kind '{kind}' has no root table")));
            }
            for root in roots {
                if !doc.tables.contains_key(&root.table) {
                    return Err(invalid(format!(
                        "subject '{kind}' names table {} which is not in the data map",
                        root.table
                    )));
                }
                catalog
                    .column(&qualified(&root.table), &root.column)
                    .ok_or_else(|| {
                        invalid(format!(
                            "subject '{kind}' column {}.{} does not exist",
                            root.table, root.column
                        ))
                    })?;
            }
        }

        if let Some(tenant) = &doc.tenant_column {
            for (name, spec) in &doc.tables {
                let has = catalog.column(&qualified(name), tenant).is_some();
                let linked = spec.links.iter().any(|l| &l.column == tenant);
                if has && !linked && !is_tenant_root(&doc, name) {
                    return Err(invalid(format!(
                        "{name}.{tenant} (the tenant column) must be one of the table's links"
                    )));
                }
            }
        }

        let delete_order = children_first(&doc)?;
        Ok(DataMap {
            doc,
            delete_order,
            column_types,
            delete_checks,
        })
    }

    pub fn table(&self, name: &str) -> &TableSpec {
        &self.doc.tables[name]
    }

    pub fn column_type(&self, table: &str, column: &str) -> &str {
        self.column_types
            .get(&(table.to_owned(), column.to_owned()))
            .map(String::as_str)
            .unwrap_or("text")
    }
}

fn is_tenant_root(doc: &DataMapDoc, table: &str) -> bool {
    doc.subjects
        .get("org")
        .is_some_and(|roots| roots.iter().any(|r| r.table == table))
}

/// A topological order in which every table comes before the tables it links to.
fn children_first(doc: &DataMapDoc) -> Result<Vec<String>, CoreError> {
    // Kahn's algorithm on parent <- child edges, emitting tables no remaining child points at.
    let mut pending_children: BTreeMap<&str, usize> =
        doc.tables.keys().map(|t| (t.as_str(), 0)).collect();
    for spec in doc.tables.values() {
        for link in &spec.links {
            *pending_children.get_mut(link.parent.as_str()).unwrap() += 1;
        }
    }
    let mut ready: Vec<&str> = pending_children
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(t, _)| *t)
        .collect();
    let mut order = Vec::new();
    while let Some(t) = ready.pop() {
        order.push(t.to_owned());
        for link in &doc.tables[t].links {
            let n = pending_children.get_mut(link.parent.as_str()).unwrap();
            *n -= 1;
            if *n == 0 {
                ready.push(link.parent.as_str());
            }
        }
    }
    if order.len() != doc.tables.len() {
        let stuck: Vec<&str> = pending_children
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(t, _)| *t)
            .collect();
        return Err(invalid(format!(
            "links form a cycle among: {}",
            stuck.join(", ")
        )));
    }
    Ok(order)
}
