//! pg_erasure: erases a person's data from a CRM database on request, keeps only what the law
//! requires for as long as it requires, and takes its rules from sandboxed WebAssembly modules.
//!
//! Layout: `api/` holds the thin SQL-facing entry points, `engine/` the backend-side machinery
//! (SPI, caches, the rule host, requests); planning lives in the `erasure-core` crate and the
//! WebAssembly host in `erasure-rule-host`, both testable without a server.

use pgrx::prelude::*;

mod api;
mod engine;
mod error;
mod guc;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    engine::delete_checks::install_hook();
}
