//! The active data map: read from `erasure.data_map`, validated at load against the catalog,
//! compiled into one plan per subject kind and cached per backend until a newer map is loaded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use erasure_core::catalog::{Catalog, ColumnFacts, ForeignKey, TableFacts};
use erasure_core::datamap::{DataMap, DataMapDoc};
use erasure_core::plan::{Plan, RootStyle};
use erasure_core::subject::SubjectKind;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;

use super::statements::{first_value, forget_plans_except, prepared, StatementId};
use crate::error::{ExtError, ExtResult};

pub struct LoadedMap {
    pub id: i64,
    pub map: DataMap,
    plans: RefCell<HashMap<(SubjectKind, RootStyle), Rc<Plan>>>,
}

impl LoadedMap {
    pub fn plan(&self, kind: SubjectKind, style: RootStyle) -> ExtResult<Rc<Plan>> {
        if let Some(p) = self.plans.borrow().get(&(kind, style)) {
            return Ok(p.clone());
        }
        let plan = Rc::new(Plan::build(&self.map, kind, style)?);
        self.plans.borrow_mut().insert((kind, style), plan.clone());
        Ok(plan)
    }
}

thread_local! {
    static ACTIVE: RefCell<Option<Rc<LoadedMap>>> = const { RefCell::new(None) };
}

/// The active data map, from the backend cache when its version is current.
pub fn active(client: &SpiClient<'_>) -> ExtResult<Rc<LoadedMap>> {
    let stmt = prepared(
        client,
        StatementId::Fixed("active_map_id"),
        || "SELECT id FROM erasure.data_map WHERE active".into(),
        Vec::new,
    )?;
    let id: Option<i64> = first_value(client.select(&*stmt, None, &[])?)?;
    by_id(client, id)
}

/// The data map with this id (the active one, as the caller read it), from the backend cache
/// when it is there.
pub fn by_id(client: &SpiClient<'_>, id: Option<i64>) -> ExtResult<Rc<LoadedMap>> {
    let Some(id) = id else {
        return Err(ExtError::NotReady(
            "no data map is loaded: call erasure.load_data_map(map jsonb) first".into(),
        ));
    };
    if let Some(m) = ACTIVE.with(|a| a.borrow().clone()).filter(|m| m.id == id) {
        return Ok(m);
    }
    let stmt = prepared(
        client,
        StatementId::Fixed("map_by_id"),
        || "SELECT map FROM erasure.data_map WHERE id = $1".into(),
        || vec![PgOid::from(pg_sys::INT8OID)],
    )?;
    let map: JsonB = client
        .select(&*stmt, None, &[id.into()])?
        .first()
        .get_one()?
        .ok_or_else(|| ExtError::Internal("active data map vanished".into()))?;
    let doc = DataMapDoc::from_json(&map.0)?;
    // Stored maps were validated at load; revalidate against today's catalog so a schema
    // change since then is reported clearly rather than half-way through a request.
    let catalog = read_catalog(client, &doc.catalog_tables())?;
    let loaded = Rc::new(LoadedMap {
        id,
        map: DataMap::validate(doc, &catalog)?,
        plans: RefCell::new(HashMap::new()),
    });
    forget_plans_except(id);
    ACTIVE.with(|a| *a.borrow_mut() = Some(loaded.clone()));
    Ok(loaded)
}

/// Reads columns, primary keys and foreign keys of the named tables (`schema.table`), plus
/// every foreign key that points at one of them.
pub fn read_catalog(client: &SpiClient<'_>, tables: &[String]) -> ExtResult<Catalog> {
    let mut catalog = Catalog::default();
    let names: Vec<String> = tables.to_vec();
    let columns = client.select(
        "SELECT n.nspname || '.' || c.relname, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                coalesce(a.attnum = ANY(i.indkey::int2[]), false)
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
          WHERE c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = ANY($1)",
        None,
        &[names.clone().into()],
    )?;
    for row in columns {
        let table: String = row.get(1)?.unwrap_or_default();
        let column: String = row.get(2)?.unwrap_or_default();
        let type_name: String = row.get(3)?.unwrap_or_default();
        let not_null: bool = row.get(4)?.unwrap_or(false);
        let in_pk: bool = row.get(5)?.unwrap_or(false);
        let t = catalog
            .tables
            .entry(table)
            .or_insert_with(TableFacts::default);
        if in_pk {
            t.primary_key.push(column.clone());
        }
        t.columns.insert(
            column,
            ColumnFacts {
                type_name,
                not_null,
            },
        );
    }
    let fks = client.select(
        "SELECT con.conname::text,
                cn.nspname || '.' || cc.relname,
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
                pn.nspname || '.' || pc.relname,
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o),
                con.oid::bigint,
                con.confdeltype IN ('a', 'r') AND NOT con.condeferrable
                    AND cc.relkind = 'r' AND pc.relkind = 'r'
           FROM pg_constraint con
           JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
           JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE con.contype = 'f' AND pn.nspname || '.' || pc.relname = ANY($1)
          ORDER BY 1",
        None,
        &[names.into()],
    )?;
    for row in fks {
        catalog.foreign_keys.push(ForeignKey {
            name: row.get(1)?.unwrap_or_default(),
            child: row.get(2)?.unwrap_or_default(),
            child_columns: row.get(3)?.unwrap_or_default(),
            parent: row.get(4)?.unwrap_or_default(),
            parent_columns: row.get(5)?.unwrap_or_default(),
            oid: row.get::<i64>(6)?.unwrap_or_default() as u32,
            delete_check_only: row.get(7)?.unwrap_or(false),
        });
    }
    Ok(catalog)
}

/// Validates and stores a new data map, making it the active one.
pub fn load(client: &mut SpiClient<'_>, map: serde_json::Value) -> ExtResult<i64> {
    let doc = DataMapDoc::from_json(&map)?;
    let catalog = read_catalog(client, &doc.catalog_tables())?;
    let validated = DataMap::validate(doc, &catalog)?;
    // Every subject kind must plan, so a request never meets a map that cannot serve it.
    for kind in SubjectKind::ALL {
        if validated.doc.subjects.contains_key(kind.as_str()) {
            Plan::build(&validated, kind, RootStyle::Array)?;
        }
    }
    client.update(
        "UPDATE erasure.data_map SET active = false WHERE active",
        None,
        &[],
    )?;
    let id: Option<i64> = client
        .update(
            "INSERT INTO erasure.data_map (map) VALUES ($1) RETURNING id",
            None,
            &[JsonB(map).into()],
        )?
        .first()
        .get_one()?;
    let id = id.ok_or_else(|| ExtError::Internal("data map insert returned nothing".into()))?;
    client.update(
        "INSERT INTO erasure.audit_log (event, detail) VALUES ('data_map_loaded', jsonb_build_object('data_map_id', $1::bigint, 'tables', $2::int))",
        None,
        &[id.into(), (validated.doc.tables.len() as i32).into()],
    )?;
    Ok(id)
}

/// `explain_plan`: the plan of a subject kind under the active data map, described (one root
/// key per root table, as for `contact:<id>` or `org:<id>`).
pub fn explain(client: &SpiClient<'_>, kind: &str) -> ExtResult<serde_json::Value> {
    let kind = SubjectKind::parse(kind).ok_or_else(|| {
        ExtError::InvalidArgument(
            "subject_kind must be one of user, contact, phone, email, meta, org".into(),
        )
    })?;
    let map = active(client)?;
    let plan = map.plan(kind, RootStyle::Scalar)?;
    let mut out = erasure_core::statements::describe(&map.map, &plan);
    out["data_map_id"] = serde_json::json!(map.id);
    Ok(out)
}
