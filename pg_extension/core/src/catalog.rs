//! Facts about the database's tables, read from the system catalogs by the extension and
//! handed to the data-map validation as plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Catalog {
    /// By `schema.table`.
    pub tables: BTreeMap<String, TableFacts>,
    /// Every foreign key whose referenced (parent) table is one of `tables`.
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableFacts {
    pub columns: BTreeMap<String, ColumnFacts>,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnFacts {
    /// As `format_type` prints it, e.g. `bigint`, `text`, `timestamp with time zone`.
    pub type_name: String,
    pub not_null: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: String,
    /// `schema.table`
    pub child: String,
    pub child_columns: Vec<String>,
    /// `schema.table`
    pub parent: String,
    pub parent_columns: Vec<String>,
    /// The constraint's OID (0 where no server was asked, as in unit tests).
    #[serde(default)]
    pub oid: u32,
    /// Whether deleting a parent row queues nothing but a check that no child row references it
    /// (ON DELETE NO ACTION or RESTRICT), immediately (not deferrable), between two ordinary
    /// tables: then an erasure that removes the children itself may replace PostgreSQL's
    /// per-row check by one set-based check of its own.
    #[serde(default)]
    pub delete_check_only: bool,
}

impl Catalog {
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnFacts> {
        self.tables.get(table)?.columns.get(column)
    }
}
