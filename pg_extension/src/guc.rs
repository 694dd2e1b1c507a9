//! Every setting of the extension, registered in one place.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Fuel (roughly, WebAssembly instructions) one rule-module call may burn.
pub static MODULE_FUEL: GucSetting<i32> = GucSetting::<i32>::new(200_000_000);
/// Memory one rule-module instance may grow to, in MiB.
pub static MODULE_MEMORY_MB: GucSetting<i32> = GucSetting::<i32>::new(16);
/// Largest output a rule module may return, in MiB.
pub static MODULE_OUTPUT_MB: GucSetting<i32> = GucSetting::<i32>::new(16);
/// Rows per rule-module call where the data map asks for per-row decisions.
pub static DECISION_BATCH_ROWS: GucSetting<i32> = GucSetting::<i32>::new(5_000);
/// Most rows `purge_due()` deletes per statement.
pub static PURGE_BATCH_ROWS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Time one `purge_due()` batch aims at, in ms: batches are sized per table from the rows per
/// millisecond its earlier batches achieved, so no batch holds its locks for long.
pub static PURGE_BATCH_MS: GucSetting<i32> = GucSetting::<i32>::new(80);
/// Whether an erasure checks its foreign keys itself, once per request, instead of
/// PostgreSQL's check per deleted row (see `engine::delete_checks`).
pub static BATCH_FK_CHECKS: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Whether a backend loads a rule module's native code from a file it keeps in the data
/// directory (`pg_erasure/modules/`) rather than from `erasure.modules` (see `engine::rules`).
pub static MODULE_FILES: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn register() {
    GucRegistry::define_bool_guc(
        c"erasure.batch_fk_checks",
        c"Check an erasure's foreign keys once per request instead of once per deleted row.",
        c"Only in READ COMMITTED, and only foreign keys whose referencing rows the erasure itself removes; off leaves every check to PostgreSQL.",
        &BATCH_FK_CHECKS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"erasure.module_files",
        c"Load rule modules' native code from files kept in the data directory.",
        c"pg_erasure/modules/<sha256>-<engine>.cwasm, written on a module's first load (from erasure.modules, or compiled when its stored code does not fit this build) and checked on every load; off reads erasure.modules every time and writes no file.",
        &MODULE_FILES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"erasure.module_fuel",
        c"Fuel budget of one rule-module call.",
        c"A call that runs out traps and aborts the erasure; nothing is deleted.",
        &MODULE_FUEL,
        10_000,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"erasure.module_memory_mb",
        c"Memory cap of one rule-module instance, in MiB.",
        c"Growing past it fails inside the module; modules declaring more are refused at install.",
        &MODULE_MEMORY_MB,
        1,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"erasure.module_output_mb",
        c"Largest output of one rule-module call, in MiB.",
        c"",
        &MODULE_OUTPUT_MB,
        1,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"erasure.decision_batch_rows",
        c"Rows per rule-module call for tables with per-row attributes.",
        c"",
        &DECISION_BATCH_ROWS,
        1,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"erasure.purge_batch_rows",
        c"Most rows purge_due() deletes per statement.",
        c"Batches are sized to erasure.purge_batch_ms, up to this many rows.",
        &PURGE_BATCH_ROWS,
        1,
        10_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"erasure.purge_batch_ms",
        c"Time one purge_due() batch aims at, in milliseconds.",
        c"Each table's batches are sized from the rows per millisecond its earlier batches achieved; a batch holds its row locks until it commits.",
        &PURGE_BATCH_MS,
        1,
        60_000,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn limits() -> erasure_rule_host::Limits {
    erasure_rule_host::Limits {
        fuel: MODULE_FUEL.get() as u64,
        memory_bytes: MODULE_MEMORY_MB.get() as usize * 1024 * 1024,
        output_bytes: MODULE_OUTPUT_MB.get() as usize * 1024 * 1024,
    }
}
