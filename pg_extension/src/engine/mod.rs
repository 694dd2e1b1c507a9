//! The erasure engine inside the backend: SPI, caches, the rule host, requests.

pub mod context;
pub mod datamap;
pub mod delete_checks;
pub mod erase;
pub mod failures;
pub mod jsonb_datum;
pub mod modules;
pub mod purge;
pub mod request;
pub mod rules;
pub mod shadow;
pub mod statements;
pub mod subxact;

/// `pg_erasure/` in the data directory: the extension's own files, kept beside the cluster and
/// not WAL-logged (the spool of failed requests, precompiled rule modules).
pub fn own_dir() -> std::path::PathBuf {
    // SAFETY: DataDir is set once at backend start and never freed.
    let data_dir = unsafe { std::ffi::CStr::from_ptr(pgrx::pg_sys::DataDir) }
        .to_string_lossy()
        .into_owned();
    std::path::PathBuf::from(data_dir).join("pg_erasure")
}
