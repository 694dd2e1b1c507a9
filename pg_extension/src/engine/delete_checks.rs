//! Foreign-key checks of an erasure, done once per request instead of once per row.
//!
//! Deleting a parent row makes PostgreSQL queue one check per foreign key into its table (the
//! internal `RI_FKey_noaction_del` / `RI_FKey_restrict_del` triggers), each a query run at the
//! end of the statement: dozens of queries for one contact, half an organization's erasure
//! time. A plan deletes or unlinks,
//! in its other steps, every row that references the rows it deletes (the data map's links,
//! checked against `pg_constraint`), so those checks can only fail if a row appeared in between
//! or outside the plan's reach. The engine therefore leaves them out of its own delete
//! statements (and only those: the CRM's own triggers and every foreign key with an action
//! still run) and checks the same links after the last step in one statement over the deleted
//! keys ([`erasure_core::statements::delete_check`]): a person's come back to the engine, an
//! organization's go to a temporary table in chunks ([`erasure_core::plan::DeletedKeys`]).
//! An organization's tables are scoped by the tenant column alone, so there the check is also
//! what finds a row of another organization that references one of its rows.
//!
//! Only in READ COMMITTED: that statement then takes a snapshot after the deletes, so it sees
//! every row a concurrent writer committed under a parent before the parent's delete (the
//! writer's key-share lock on the parent made the delete wait for it), and a writer coming
//! later waits for this transaction and fails its own check. Under REPEATABLE READ or
//! SERIALIZABLE the transaction's snapshot would miss such rows, so PostgreSQL checks as usual.
//!
//! The leaving out happens in an `ExecutorStart` hook, on the statement the engine runs next
//! and on nothing else: the engine arms it just before, the hook disarms it on its first call,
//! and it edits only that execution's private copy of the table's trigger list.

use std::cell::RefCell;
use std::ffi::c_int;

use erasure_core::plan::CheckedLink;
use pgrx::pg_sys;

use crate::error::ExtError;
use crate::guc;

thread_local! {
    /// Constraints whose per-row delete check the next executor start leaves out.
    static ARMED: RefCell<Option<Vec<pg_sys::Oid>>> = const { RefCell::new(None) };
}

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// Installs the hook; called once, from `_PG_init`.
pub fn install_hook() {
    // SAFETY: _PG_init runs once per backend, single-threaded, before any query of ours; the
    // previous hook is kept and called first, as every hook chain does.
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

/// Whether this request checks its own links: on (`erasure.batch_fk_checks`) and READ
/// COMMITTED.
pub fn enabled() -> bool {
    // SAFETY: reads a backend-global integer that PostgreSQL sets at transaction start.
    let read_committed = unsafe { pg_sys::XactIsoLevel } < pg_sys::XACT_REPEATABLE_READ as c_int;
    read_committed && guc::BATCH_FK_CHECKS.get()
}

/// Runs `f` (which runs one statement) with the per-row checks of `links` left out of that
/// statement.
pub fn without_row_checks<R>(links: &[CheckedLink], f: impl FnOnce() -> R) -> R {
    struct Disarm;
    impl Drop for Disarm {
        fn drop(&mut self) {
            // Also on an error before the statement reached the executor: an armed hook must
            // never meet a statement that is not the engine's.
            ARMED.with(|a| a.borrow_mut().take());
        }
    }
    let _disarm = Disarm;
    let constraints = links
        .iter()
        .map(|l| pg_sys::Oid::from(l.check.oid))
        .collect();
    ARMED.with(|a| *a.borrow_mut() = Some(constraints));
    f()
}

/// The error of a check that found a row of `link`'s child still referencing a row of `parent`
/// that `what` (the erasure, the purge) deleted.
pub fn still_referenced(link: &CheckedLink, parent: &str, what: &str) -> ExtError {
    ExtError::StillReferenced(format!(
        "rows of {} still reference rows of {parent} that the {what} deleted \
         (column {}, foreign key {}); the {what} is rolled back",
        link.child, link.column, link.check.name
    ))
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    // Taken before anything else runs, so no query started by another hook, a planner
    // function or a trigger can see it.
    let armed = ARMED.with(|a| a.borrow_mut().take());
    // SAFETY: the previous hook or the standard executor start, with the arguments given.
    unsafe {
        match PREVIOUS_EXECUTOR_START {
            Some(previous) => previous(query_desc, eflags),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    }
    if let Some(constraints) = armed {
        // SAFETY: the executor has just been started for `query_desc`, so its EState and
        // result relations exist and belong to this execution.
        unsafe { leave_out_row_checks(query_desc, &constraints) };
    }
}

/// Removes the per-row delete checks of `constraints` from the trigger lists of the statement's
/// result relations.
///
/// # Safety
///
/// `query_desc` must have been through `ExecutorStart`.
unsafe fn leave_out_row_checks(query_desc: *mut pg_sys::QueryDesc, constraints: &[pg_sys::Oid]) {
    let check_functions = [
        pg_sys::Oid::from(pg_sys::F_RI_FKEY_NOACTION_DEL),
        pg_sys::Oid::from(pg_sys::F_RI_FKEY_RESTRICT_DEL),
    ];
    // SAFETY: (for the whole block) the EState, its list of opened result relations and each
    // relation's `ri_TrigDesc` were built by ExecutorStart for this execution alone;
    // `ri_TrigDesc` is the executor's private copy of the relation's triggers (InitResultRelInfo
    // copies it), so compacting its array changes nothing outside this execution. Triggers are
    // plain structs; moving them within their array keeps every pointer they hold valid.
    unsafe {
        let estate = (*query_desc).estate;
        if estate.is_null() {
            return;
        }
        let relations =
            pgrx::PgList::<pg_sys::ResultRelInfo>::from_pg((*estate).es_opened_result_relations);
        for relation in relations.iter_ptr() {
            let desc = (*relation).ri_TrigDesc;
            if desc.is_null() || (*desc).numtriggers <= 0 {
                continue;
            }
            let triggers = (*desc).triggers;
            let count = (*desc).numtriggers as usize;
            let mut kept = 0;
            let mut after_row_delete = false;
            for i in 0..count {
                let t = &*triggers.add(i);
                let redundant = t.tgisinternal
                    && constraints.contains(&t.tgconstraint)
                    && check_functions.contains(&t.tgfoid);
                if redundant {
                    continue;
                }
                after_row_delete |= is_after_row_delete(t.tgtype);
                if kept != i {
                    std::ptr::copy_nonoverlapping(triggers.add(i), triggers.add(kept), 1);
                }
                kept += 1;
            }
            (*desc).numtriggers = kept as c_int;
            (*desc).trig_delete_after_row = after_row_delete;
        }
    }
}

/// `TRIGGER_TYPE_MATCHES(type, ROW, AFTER, DELETE)` of `commands/trigger.h`.
fn is_after_row_delete(tgtype: i16) -> bool {
    let t = tgtype as u32;
    t & pg_sys::TRIGGER_TYPE_ROW != 0
        && t & (pg_sys::TRIGGER_TYPE_BEFORE | pg_sys::TRIGGER_TYPE_INSTEAD) == 0
        && t & pg_sys::TRIGGER_TYPE_DELETE != 0
}
