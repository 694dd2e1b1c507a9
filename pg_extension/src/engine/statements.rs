//! Prepared statements, prepared once per backend and kept (`SPI_keepplan`) for reuse.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};

use crate::error::ExtResult;

/// Identifies a statement: fixed utility statements by name, plan statements by the data map
/// version, subject kind, step and statement kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatementId {
    Fixed(&'static str),
    Plan {
        map_id: i64,
        kind: erasure_core::subject::SubjectKind,
        style: erasure_core::plan::RootStyle,
        step: usize,
        what: erasure_core::statements::StatementKind,
    },
    /// The foreign-key check after a person's steps (`erasure_core::statements::delete_check`).
    DeleteCheck {
        map_id: i64,
        kind: erasure_core::subject::SubjectKind,
        style: erasure_core::plan::RootStyle,
    },
    Root {
        map_id: i64,
        kind: erasure_core::subject::SubjectKind,
        root: usize,
    },
    Purge {
        map_id: i64,
        table: usize,
        pass: PurgePass,
    },
    /// The foreign-key check after each purge batch of a table (`keys_check`).
    PurgeCheck {
        map_id: i64,
        table: usize,
    },
}

/// The two walks of `purge_due` over a table's ledger rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgePass {
    /// Rows kept until a date that has passed.
    Dated,
    /// Rows kept without a date, by a hold only.
    Undated,
}

thread_local! {
    static PREPARED: RefCell<HashMap<StatementId, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Parameter types for `prepared`.
pub fn oids(types: &[pg_sys::Oid]) -> Vec<PgOid> {
    types.iter().map(|&t| PgOid::from(t)).collect()
}

/// Returns the kept statement for `id`, preparing `sql` with `types` the first time.
pub fn prepared(
    client: &SpiClient<'_>,
    id: StatementId,
    sql: impl FnOnce() -> String,
    types: impl FnOnce() -> Vec<PgOid>,
) -> ExtResult<Rc<OwnedPreparedStatement>> {
    if let Some(stmt) = PREPARED.with(|p| p.borrow().get(&id).cloned()) {
        return Ok(stmt);
    }
    let text = sql();
    let stmt = Rc::new(client.prepare_mut(text.as_str(), &types())?.keep());
    PREPARED.with(|p| p.borrow_mut().insert(id, stmt.clone()));
    Ok(stmt)
}

/// Drops every statement of older data maps.
pub fn forget_plans_except(map_id: i64) {
    PREPARED.with(|p| {
        p.borrow_mut().retain(|id, _| match id {
            StatementId::Fixed(_) => true,
            StatementId::Plan { map_id: m, .. }
            | StatementId::DeleteCheck { map_id: m, .. }
            | StatementId::Root { map_id: m, .. }
            | StatementId::Purge { map_id: m, .. }
            | StatementId::PurgeCheck { map_id: m, .. } => *m == map_id,
        })
    });
}

/// The first column of the first row, or `None` when there is no row (pgrx's `get_one` on an
/// empty result is an error, not a `None`).
pub fn first_value<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    table: SpiTupleTable<'_>,
) -> ExtResult<Option<T>> {
    if table.is_empty() {
        Ok(None)
    } else {
        Ok(table.first().get_one::<T>()?)
    }
}

/// Runs a kept statement that may write.
pub fn run<'conn>(
    client: &mut SpiClient<'conn>,
    stmt: &OwnedPreparedStatement,
    args: &[DatumWithOid<'_>],
) -> ExtResult<SpiTupleTable<'conn>> {
    Ok(client.update(stmt, None, args)?)
}

/// Runs `f` with `plan_cache_mode = force_generic_plan`, as a function's `SET` clause would.
///
/// For statements whose plan does not depend on the parameters' values (those of one person):
/// PostgreSQL otherwise plans the first five executions of each in every backend for their
/// values, which costs more than running them.
pub fn with_generic_plans<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: a new GUC nest level and a value saved in it, like fmgr does for a function's SET
    // clause; the name and value are valid C strings. An error inside `f` aborts the
    // (sub)transaction, whose cleanup pops the nest level.
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"plan_cache_mode".as_ptr(),
            c"force_generic_plan".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        level
    };
    let out = f();
    // SAFETY: pops exactly the nest level pushed above, restoring plan_cache_mode.
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    out
}
