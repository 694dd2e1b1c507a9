//! A subtransaction that is always rolled back: how `preview_erasure` runs the real erasure
//! code and changes nothing.

use pgrx::pg_sys;

/// Runs `f` inside an internal subtransaction and rolls it back afterwards. If `f` raises an
/// error, the error aborts the caller's transaction, subtransaction included, as any error does.
pub fn rolled_back<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the subtransaction API is called from a backend inside a transaction (every SQL
    // function call is); memory context and resource owner are restored exactly as PL/pgSQL
    // does around its exception blocks, so the caller's allocations stay valid.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let out = f();
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        out
    }
}
