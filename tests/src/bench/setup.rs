//! The bench database: the reference CRM with generated data and the extension in `public`,
//! and two copies of the same rows, `crm_cascade` (every foreign key ON DELETE CASCADE) and
//! `crm_nofk` (no foreign keys), with the same indexes, built set-based.

use std::time::Instant;

use postgres::Client;
use serde_json::{json, Value};

use super::util::{ensure, progress, secs, session, R};

fn repo_file(rel: &str) -> R<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Drops and recreates the database, loads the schema and the generator.
pub fn create_database(db: &str) -> R<Client> {
    let mut admin = session("postgres", "admin", None)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
    let mut c = session(db, "setup", None)?;
    c.batch_execute(&repo_file("sql/crm_schema.sql")?)?;
    c.batch_execute(&repo_file("sql/crm_generate.sql")?)?;
    Ok(c)
}

pub fn drop_database(db: &str) -> R<()> {
    let mut admin = session("postgres", "admin", None)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
    Ok(())
}

/// `crm_generate(orgs, contacts, messages)`: rows inserted per table.
pub fn generate(c: &mut Client, orgs: i32, contacts: i32, messages: i32) -> R<Value> {
    let v: Value = c
        .query_one(
            "SELECT public.crm_generate($1, $2, $3)",
            &[&orgs, &contacts, &messages],
        )?
        .get(0);
    Ok(v)
}

pub fn install_extension(c: &mut Client) -> R<String> {
    c.batch_execute(
        "CREATE EXTENSION pg_erasure;
         SELECT erasure.load_data_map(erasure.reference_data_map());",
    )?;
    let v: String = c
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_erasure'",
            &[],
        )?
        .get(0);
    Ok(v)
}

pub fn crm_tables(c: &mut Client) -> R<Vec<String>> {
    Ok(c.query(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        &[],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Autovacuum off on the bench's CRM tables (every schema), so a vacuum started by the
/// previous variant's deletes cannot land in the next one's timing. Applies to all variants.
pub fn autovacuum_off(c: &mut Client, schema: &str) -> R<()> {
    for t in crm_tables(c)? {
        c.batch_execute(&format!(
            "ALTER TABLE {schema}.{t} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
        ))?;
    }
    Ok(())
}

/// One copy of the CRM in `schema`: same columns, checks, identity, indexes and rows; with
/// `cascade`, every foreign key of `public` re-created ON DELETE CASCADE; without, none.
/// Rows first, then primary keys, unique constraints and indexes, then foreign keys.
pub fn copy_schema(db: &str, schema: &str, cascade: bool) -> R<f64> {
    let t0 = Instant::now();
    let mut c = session(db, &format!("copy:{schema}"), None)?;
    let tables = crm_tables(&mut c)?;
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))?;
    for t in &tables {
        c.batch_execute(&format!(
            "CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL EXCLUDING INDEXES);
             INSERT INTO {schema}.{t} SELECT * FROM public.{t};"
        ))?;
        for row in c.query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
              WHERE conrelid = format('public.%I', $1::text)::regclass AND contype IN ('p', 'u')
              ORDER BY contype, conname",
            &[t],
        )? {
            let (name, def): (String, String) = (row.get(0), row.get(1));
            c.batch_execute(&format!(
                "ALTER TABLE {schema}.{t} ADD CONSTRAINT {name} {def}"
            ))?;
        }
        for row in c.query(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
              WHERE i.indrelid = format('public.%I', $1::text)::regclass
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
              ORDER BY 1",
            &[t],
        )? {
            let def: String = row.get(0);
            let from = format!(" ON public.{t} ");
            ensure(def.contains(&from), || {
                format!("unexpected index definition: {def}")
            })?;
            c.batch_execute(&def.replace(&from, &format!(" ON {schema}.{t} ")))?;
        }
    }
    if cascade {
        for row in c.query(
            "SELECT k.conname::text, t.relname::text, a.attname::text, p.relname::text, pa.attname::text,
                    cardinality(k.conkey)
               FROM pg_constraint k
               JOIN pg_class t ON t.oid = k.conrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
               JOIN pg_class p ON p.oid = k.confrelid
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
               JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
              WHERE k.contype = 'f' AND n.nspname = 'public'
              ORDER BY 1",
            &[],
        )? {
            let (name, t, col, parent, pcol, n): (String, String, String, String, String, i32) = (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            );
            ensure(n == 1, || format!("foreign key {name} has {n} columns"))?;
            c.batch_execute(&format!(
                "ALTER TABLE {schema}.{t} ADD CONSTRAINT {name} FOREIGN KEY ({col})
                   REFERENCES {schema}.{parent} ({pcol}) ON DELETE CASCADE"
            ))?;
        }
    }
    Ok(secs(t0))
}

/// Both copies, built side by side on two connections.
pub fn copy_both(db: &str) -> R<(f64, f64)> {
    let d1 = db.to_owned();
    let d2 = db.to_owned();
    let a = std::thread::spawn(move || {
        copy_schema(&d1, "crm_cascade", true).map_err(|e| e.to_string())
    });
    let b =
        std::thread::spawn(move || copy_schema(&d2, "crm_nofk", false).map_err(|e| e.to_string()));
    let ra = a.join().map_err(|_| "copy thread panicked")??;
    let rb = b.join().map_err(|_| "copy thread panicked")??;
    Ok((ra, rb))
}

/// Every CRM table has the same number of rows in the three schemas, and the copies have the
/// indexes and foreign keys they should.
pub fn verify_copies(c: &mut Client) -> R<Value> {
    let mut per_table = serde_json::Map::new();
    for t in crm_tables(c)? {
        let row = c.query_one(
            &format!(
                "SELECT (SELECT count(*) FROM public.{t}), (SELECT count(*) FROM crm_cascade.{t}),
                        (SELECT count(*) FROM crm_nofk.{t})"
            ),
            &[],
        )?;
        let (p, k, n): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        ensure(p == k && p == n, || {
            format!("copies differ in {t}: public {p}, crm_cascade {k}, crm_nofk {n}")
        })?;
        per_table.insert(t, json!(p));
    }
    let row = c.query_one(
        "SELECT count(*) FILTER (WHERE n.nspname = 'public'),
                count(*) FILTER (WHERE n.nspname = 'crm_cascade'),
                count(*) FILTER (WHERE n.nspname = 'crm_nofk')
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace",
        &[],
    )?;
    let (ip, ik, inn): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    ensure(ip == ik && ip == inn, || {
        format!("index counts differ: public {ip}, crm_cascade {ik}, crm_nofk {inn}")
    })?;
    let row = c.query_one(
        "SELECT count(*) FILTER (WHERE n.nspname = 'public'),
                count(*) FILTER (WHERE n.nspname = 'crm_cascade' AND k.confdeltype = 'c'),
                count(*) FILTER (WHERE n.nspname = 'crm_nofk')
           FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace WHERE k.contype = 'f'",
        &[],
    )?;
    let (fp, fk, fnn): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    ensure(fp == fk && fnn == 0, || {
        format!("foreign keys: public {fp}, crm_cascade (cascading) {fk}, crm_nofk {fnn}")
    })?;
    progress(&format!(
        "copies verified: {} tables, {ip} indexes per schema, {fp} foreign keys",
        per_table.len()
    ));
    Ok(json!({"rows_per_table": per_table, "indexes_per_schema": ip, "foreign_keys": fp}))
}
