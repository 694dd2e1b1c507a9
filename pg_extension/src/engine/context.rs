//! What every request reads before it starts — the subject-hash salt, the active data map and
//! modules, whether any legal hold is active — cached per backend, so a request runs no
//! statement for it. Every write to the four tables these come from fires the statement-level
//! trigger `erasure.context_changed`, which queues a relcache invalidation of that table; every
//! backend (this one at its next command) drops the cache when it processes it.

use std::cell::{Cell, RefCell};

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::statements::{prepared, StatementId};
use crate::error::{ExtError, ExtResult};

/// The cached part of a request's context.
#[derive(Clone)]
pub struct RequestContext {
    pub salt: String,
    pub map_id: Option<i64>,
    /// Active modules as (slot, sha256), in slot order.
    pub modules: Vec<(String, String)>,
    pub any_active_hold: bool,
    /// `erasure.requests_id_seq`.
    requests_seq: pg_sys::Oid,
    /// The tables the fields above are read from; an invalidation of any drops the cache.
    sources: [pg_sys::Oid; 4],
}

thread_local! {
    static CACHED: RefCell<Option<RequestContext>> = const { RefCell::new(None) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Relcache invalidation callback: drops the cache when one of its source tables (or, with
/// `InvalidOid`, every relation) is invalidated.
#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    CACHED.with(|c| {
        let stale = c
            .borrow()
            .as_ref()
            .is_some_and(|ctx| relid == pg_sys::InvalidOid || ctx.sources.contains(&relid));
        if stale {
            c.borrow_mut().take();
        }
    });
}

/// The request context, from the cache or read in one statement.
pub fn current(client: &SpiClient<'_>) -> ExtResult<RequestContext> {
    if let Some(ctx) = CACHED.with(|c| c.borrow().clone()) {
        return Ok(ctx);
    }
    if !CALLBACK_REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers a plain function for the life of the backend; it only touches this
        // module's thread-local cache.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0))
        };
    }
    let stmt = prepared(
        client,
        StatementId::Fixed("request_context"),
        || {
            "SELECT s.subject_salt,
                    (SELECT id FROM erasure.data_map WHERE active),
                    (SELECT array_agg(slot ORDER BY slot) FROM erasure.modules WHERE active),
                    (SELECT array_agg(sha256 ORDER BY slot) FROM erasure.modules WHERE active),
                    EXISTS (SELECT 1 FROM erasure.legal_holds WHERE released_at IS NULL),
                    'erasure.requests_id_seq'::regclass::oid,
                    ARRAY['erasure.settings'::regclass::oid, 'erasure.data_map'::regclass::oid,
                          'erasure.modules'::regclass::oid, 'erasure.legal_holds'::regclass::oid]
               FROM erasure.settings s"
                .into()
        },
        Vec::new,
    )?;
    let row = client.select(&*stmt, None, &[])?.first();
    let slots: Vec<String> = row.get(3)?.unwrap_or_default();
    let shas: Vec<String> = row.get(4)?.unwrap_or_default();
    let sources: Vec<pg_sys::Oid> = row.get(7)?.unwrap_or_default();
    let ctx = RequestContext {
        salt: row.get(1)?.unwrap_or_default(),
        map_id: row.get(2)?,
        modules: slots.into_iter().zip(shas).collect(),
        any_active_hold: row.get(5)?.unwrap_or(true),
        requests_seq: row.get(6)?.unwrap_or(pg_sys::InvalidOid),
        sources: sources
            .try_into()
            .map_err(|_| ExtError::Internal("request context: source tables".into()))?,
    };
    CACHED.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    Ok(ctx)
}

impl RequestContext {
    /// A new request id from `erasure.requests_id_seq`.
    pub fn next_request_id(&self) -> i64 {
        // SAFETY: nextval_oid takes one oid argument, the sequence's, which the context read
        // from the catalog; it raises an ordinary ERROR if the sequence is gone.
        unsafe {
            pgrx::direct_function_call::<i64>(
                pg_sys::nextval_oid,
                &[Some(pg_sys::Datum::from(self.requests_seq))],
            )
        }
        .unwrap_or_default()
    }
}

/// A confirmation code: `ER-` and 20 upper-case hex digits from the strong random source.
pub fn confirmation_code() -> ExtResult<String> {
    let mut bytes = [0u8; 10];
    // SAFETY: the buffer is valid for its length.
    let ok = unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) };
    if !ok {
        return Err(ExtError::Internal("no strong random bytes".into()));
    }
    Ok(format!("ER-{}", hex::encode_upper(bytes)))
}

/// The transaction's start time (`now()`).
pub fn transaction_start() -> pg_sys::TimestampTz {
    // SAFETY: reads a field of the current transaction's state.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// The current time (`clock_timestamp()`).
pub fn clock_time() -> pg_sys::TimestampTz {
    // SAFETY: reads the system clock; no state is touched.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// A PostgreSQL timestamp as RFC 3339, UTC, whole seconds (what reports and modules show).
pub fn rfc3339(ts: pg_sys::TimestampTz) -> String {
    // PostgreSQL counts microseconds from 2000-01-01; Unix seconds are 946 684 800 more.
    let secs = ts.div_euclid(1_000_000) + 946_684_800;
    erasure_abi::Timestamp::from_unix_seconds(secs).to_rfc3339()
}

/// The transaction's start time, as the modules see it.
pub fn transaction_time() -> String {
    rfc3339(transaction_start())
}

/// `erasure.context_changed()`'s work: queue a relcache invalidation of `relid`, so every
/// backend drops its cached request context.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues an invalidation message for a relation id; harmless for any oid.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}
