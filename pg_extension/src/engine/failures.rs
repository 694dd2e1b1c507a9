//! Failed requests are recorded even though their erasure rolls back. The failing backend
//! cannot write a row that outlives its own aborted transaction, so at transaction end it
//! spools the record to a file under the data directory and starts a background worker that
//! inserts it in a transaction of its own.

use std::cell::RefCell;
use std::path::PathBuf;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgXactCallbackEvent};
use serde::{Deserialize, Serialize};

/// What is kept of a failed request: no subject value, only its kind and salted hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedRequest {
    pub request_id: i64,
    pub confirmation_code: String,
    pub subject_kind: Option<String>,
    pub subject_hash: Option<String>,
    pub org_id: Option<i64>,
    pub source: String,
    pub error_code: String,
    pub error_message: String,
}

thread_local! {
    static PENDING: RefCell<Vec<FailedRequest>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f`; if it raises an error, the failure is recorded and the error re-raised unchanged.
pub fn guard<R>(failed: FailedRequest, f: impl FnOnce() -> R + std::panic::UnwindSafe) -> R {
    let mut failed = Some(failed);
    PgTryBuilder::new(f)
        .catch_others(move |caught| {
            if let Some(mut record) = failed.take() {
                let (code, message) = describe(&caught);
                record.error_code = code;
                record.error_message = message;
                stash(record);
            }
            caught.rethrow()
        })
        .execute()
}

fn describe(caught: &pg_sys::panic::CaughtError) -> (String, String) {
    use pg_sys::panic::CaughtError;
    let report = match caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    // Messages name tables, modules and SQLSTATE causes; subjects are never echoed by the
    // extension. Cap the length all the same.
    let message: String = report.message().chars().take(2000).collect();
    (sqlstate_text(report.sql_error_code() as i32), message)
}

/// The five-character SQLSTATE of a packed error code, via PostgreSQL's own function.
fn sqlstate_text(packed: i32) -> String {
    // SAFETY: unpack_sql_state reads a plain integer and returns a pointer to a static buffer,
    // which is copied at once.
    unsafe {
        let p = pg_sys::unpack_sql_state(packed);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn stash(record: FailedRequest) {
    let first = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.push(record);
        p.len() == 1
    });
    if first {
        // Whichever way the transaction ends (the caller may catch the error and commit).
        register_xact_callback(PgXactCallbackEvent::Abort, flush);
        register_xact_callback(PgXactCallbackEvent::Commit, flush);
    }
}

fn spool_dir(database: pg_sys::Oid) -> PathBuf {
    super::own_dir()
        .join("failed")
        .join(database.to_u32().to_string())
}

/// At transaction end: write every pending record to the spool and start the recorder. Runs
/// inside PostgreSQL's end-of-transaction callbacks, where an error would be fatal, so every
/// step that can fail is allowed to fail quietly (the spool file stays for the next worker).
fn flush() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    let _ = std::panic::catch_unwind(move || {
        // SAFETY: MyDatabaseId is a plain global of the backend, set at connection.
        let database = unsafe { pg_sys::MyDatabaseId };
        let dir = spool_dir(database);
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        for record in &pending {
            let Ok(text) = serde_json::to_vec(record) else {
                continue;
            };
            let tmp = dir.join(format!("{}.tmp", record.request_id));
            let done = dir.join(format!("{}.json", record.request_id));
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &done);
            }
        }
        let _ = start_recorder(database);
    });
}

fn start_recorder(database: pg_sys::Oid) -> Result<(), ()> {
    BackgroundWorkerBuilder::new("pg_erasure failed-request recorder")
        .set_library("pg_erasure")
        .set_function("pg_erasure_record_failures")
        .set_type("pg_erasure")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_extra(&database.to_u32().to_string())
        .load_dynamic()
        .map(|_| ())
        .map_err(|_| ())
}

/// Inserts every spooled record of a database and returns the spool files it read; the caller
/// removes them once the transaction committed.
pub fn ingest(database: pg_sys::Oid) -> Vec<PathBuf> {
    let dir = spool_dir(database);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    let mut records = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        if let Some(r) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<FailedRequest>(&b).ok())
        {
            records.push(r);
        }
        files.push(path);
    }
    if records.is_empty() {
        return files;
    }
    let json = serde_json::to_value(&records).unwrap_or_default();
    Spi::connect_mut(|client| {
        client.update(
            "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS x(request_id bigint, confirmation_code text,
                            subject_kind text, subject_hash text, org_id bigint, source text, error_code text, error_message text)),
                  ins AS (INSERT INTO erasure.requests (id, confirmation_code, status, subject_kind, subject_hash, org_id, source,
                                  requested_at, acknowledge_by, complete_by, error_code, error_message)
                          SELECT request_id, confirmation_code, 'failed', subject_kind, subject_hash, org_id, source,
                                 now(), now() + interval '7 days', now() + interval '30 days', error_code, error_message FROM r
                          ON CONFLICT (id) DO NOTHING RETURNING id, subject_kind, error_code)
             INSERT INTO erasure.audit_log (event, request_id, detail)
             SELECT 'erasure_failed', id, jsonb_build_object('subject_kind', subject_kind, 'error_code', error_code) FROM ins",
            None,
            &[pgrx::JsonB(json).into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| error!("pg_erasure: recording failed requests: {e}"));
    files
}

/// The background worker's entry point: connect to the database named in `bgw_extra`, ingest.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_erasure_record_failures(_arg: pg_sys::Datum) {
    let Ok(oid) = BackgroundWorker::get_extra().parse::<u32>() else {
        return;
    };
    let database = pg_sys::Oid::from(oid);
    // A worker starts with every signal blocked. Unblocked, it absorbs the ProcSignalBarrier a
    // concurrent DROP DATABASE waits for while this worker waits for that database's lock;
    // blocked, the two wait for each other forever.
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    let files = BackgroundWorker::transaction(|| ingest(database));
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}
