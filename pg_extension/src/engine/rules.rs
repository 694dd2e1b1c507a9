//! The rule modules of this backend: the wasmtime engine is created on first use (never in the
//! postmaster), each installed module is loaded once from its precompiled form and cached by
//! sha256, and every call runs with the fuel, memory and output limits of the GUCs.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use erasure_abi::{Decision, EvalInput, Hold};
use erasure_rule_host::{LoadedModule, RecordBatch, RuleHost};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;

use super::statements::{prepared, StatementId};
use crate::error::{ExtError, ExtResult};
use crate::guc;

pub const SLOTS: [&str; 2] = ["retention", "legal_hold"];

pub struct ActiveModule {
    pub slot: String,
    pub sha256: String,
    pub config: serde_json::Value,
    module: LoadedModule,
}

thread_local! {
    static HOST: OnceCell<RuleHost> = const { OnceCell::new() };
    static LOADED: RefCell<HashMap<String, Rc<ActiveModule>>> = RefCell::new(HashMap::new());
}

/// Runs `f` with this backend's rule host, creating it on first use.
pub fn with_host<R>(f: impl FnOnce(&RuleHost) -> ExtResult<R>) -> ExtResult<R> {
    HOST.with(|cell| {
        if cell.get().is_none() {
            let host = RuleHost::new().map_err(|e| ExtError::Internal(e.to_string()))?;
            let _ = cell.set(host);
        }
        f(cell.get().expect("rule host just created"))
    })
}

/// The active module of every slot, loaded, from the `(slot, sha256)` pairs the caller read.
/// A slot without an active module is an error: an erasure decided by half the rules could
/// delete what a legal hold protects.
pub fn active_modules(
    client: &SpiClient<'_>,
    active: &[(String, String)],
) -> ExtResult<Vec<Rc<ActiveModule>>> {
    let mut out = Vec::new();
    for slot in SLOTS {
        let Some((_, sha)) = active.iter().find(|(s, _)| s == slot) else {
            return Err(ExtError::NotReady(format!(
                "no active rule module in slot '{slot}': run SELECT erasure.install_default_modules()"
            )));
        };
        out.push(load(client, sha)?);
    }
    Ok(out)
}

/// Loads an installed module by sha256 (cached per backend).
///
/// Its native code comes from a file in the data directory when one is there and whole (see
/// [`artifact_path`]), else from `erasure.modules`, after which the file is written for the
/// backends to come; and from the WebAssembly itself when the precompiled code does not fit
/// this build. The file also notes the installation's slot and configuration, so a backend
/// that finds it runs no statement at all. How long it took, and from where, is logged at
/// DEBUG1.
pub fn load(client: &SpiClient<'_>, sha256: &str) -> ExtResult<Rc<ActiveModule>> {
    if let Some(m) = LOADED.with(|l| l.borrow().get(sha256).cloned()) {
        return Ok(m);
    }
    // The engine is the backend's, made once; not part of any module's load.
    with_host(|_| Ok(()))?;
    let started = Instant::now();
    let file = if guc::MODULE_FILES.get() {
        with_host(|host| Ok(artifact_path(sha256, &host.engine_tag())))?
    } else {
        None
    };
    let from_file = file.as_deref().and_then(|path| {
        with_host(|host| {
            // SAFETY: the file was written by `keep_file` below, in the data directory
            // (writable by the server's own user only), from this installation's precompiled
            // bytes or from its WebAssembly compiled by an engine of the same tag (the file's
            // name holds both); the host refuses it unless it is whole and matches its
            // checksums, and wasmtime refuses code of another version or configuration.
            unsafe { host.load_precompiled_file(path) }
                .map_err(|e| ExtError::Internal(e.to_string()))
        })
        .inspect_err(|e| {
            if path.exists() {
                pgrx::debug1!("pg_erasure: the module's file is not used: {e}");
            }
        })
        .ok()
    });
    // The file's note is the installation's row as it was written (an installation never
    // changes: its sha256 covers its configuration); without one (a configuration too long to
    // note) the row is read.
    let (from_file, noted) = match from_file {
        Some(loaded) => (
            Some(loaded.module),
            serde_json::from_slice::<Installation>(&loaded.note).ok(),
        ),
        None => (None, None),
    };
    let installation = match noted {
        Some(noted) => noted,
        None => installation(client, sha256)?,
    };
    let (module, source) = match from_file {
        Some(module) => (module, "its file"),
        None => {
            let precompiled = column(client, "module_precompiled", "precompiled", sha256)?;
            // SAFETY: `precompiled` was produced by `RuleHost::prepare` at install time and is
            // writable only by the extension's owner; a wasmtime or configuration change since
            // makes deserialisation fail, and then the module is compiled again from its wasm.
            match with_host(|host| Ok(unsafe { host.load_precompiled(&precompiled) })) {
                Ok(Ok(module)) => {
                    if let Some(path) = &file {
                        keep_file(sha256, path, &precompiled, &installation);
                    }
                    (module, "erasure.modules")
                }
                _ => {
                    let wasm = column(client, "module_wasm", "wasm", sha256)?;
                    let module = with_host(|host| {
                        host.load_wasm(&wasm).map_err(|source| ExtError::Module {
                            slot: installation.slot.clone(),
                            sha256: sha256.to_owned(),
                            source,
                        })
                    })?;
                    // The stored code no longer fits this build (wasmtime was upgraded): the
                    // code just compiled is kept instead, so only this backend pays for
                    // compiling until the module is installed again.
                    if let Some(path) = &file {
                        match with_host(|host| Ok(host.precompile(&module))) {
                            Ok(Ok(code)) => keep_file(sha256, path, &code, &installation),
                            _ => pgrx::debug1!("pg_erasure: the compiled module is not kept"),
                        }
                    }
                    (module, "its WebAssembly, compiled")
                }
            }
        }
    };
    let Installation { slot, config } = installation;
    pgrx::debug1!(
        "pg_erasure: rule module {} ({slot}) loaded from {source} in {:.3} ms",
        &sha256[..sha256.len().min(12)],
        started.elapsed().as_secs_f64() * 1e3
    );
    let active = Rc::new(ActiveModule {
        slot,
        sha256: sha256.to_owned(),
        config,
        module,
    });
    LOADED.with(|l| l.borrow_mut().insert(sha256.to_owned(), active.clone()));
    Ok(active)
}

/// What a backend needs of an installation besides its code, as a module's file notes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Installation {
    slot: String,
    config: serde_json::Value,
}

/// An installation's slot and configuration, from `erasure.modules`.
fn installation(client: &SpiClient<'_>, sha256: &str) -> ExtResult<Installation> {
    let stmt = prepared(
        client,
        StatementId::Fixed("module_by_sha"),
        || "SELECT slot, config FROM erasure.modules WHERE sha256 = $1".into(),
        || vec![PgOid::from(pg_sys::TEXTOID)],
    )?;
    let row = client.select(&*stmt, None, &[sha256.into()])?.first();
    if row.is_empty() {
        return Err(ExtError::NotFound(format!(
            "no installed module has sha256 {sha256}"
        )));
    }
    Ok(Installation {
        slot: row.get(1)?.unwrap_or_default(),
        config: row
            .get::<JsonB>(2)?
            .map_or_else(|| serde_json::json!({}), |c| c.0),
    })
}

/// One bytea column of an installed module.
fn column(
    client: &SpiClient<'_>,
    id: &'static str,
    name: &'static str,
    sha256: &str,
) -> ExtResult<Vec<u8>> {
    let stmt = prepared(
        client,
        StatementId::Fixed(id),
        || format!("SELECT {name} FROM erasure.modules WHERE sha256 = $1"),
        || vec![PgOid::from(pg_sys::TEXTOID)],
    )?;
    let bytes: Option<Vec<u8>> = client
        .select(&*stmt, None, &[sha256.into()])?
        .first()
        .get(1)?;
    Ok(bytes.unwrap_or_default())
}

/// Where an installation's precompiled code is kept for new backends:
/// `pg_erasure/modules/<sha256>-<engine tag>.cwasm` in the data directory. The name is the
/// installation's content address and the tag of the engines its code loads in
/// ([`RuleHost::engine_tag`](erasure_rule_host::RuleHost::engine_tag)), so a file never needs
/// invalidating and builds with different engines never share one; `None` for anything but
/// a sha256.
fn artifact_path(sha256: &str, engine_tag: &str) -> Option<PathBuf> {
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| {
        super::own_dir()
            .join("modules")
            .join(format!("{sha256}-{engine_tag}.cwasm"))
    })
}

/// Writes the file of [`artifact_path`], noting the installation's slot and configuration, and
/// removes the installation's file from before file names carried the engine's tag
/// (`<sha256>.cwasm`, which nothing reads any more). Files of other engines stay: a backend of
/// the build before an upgrade may still be running and load from its own. A failure (a
/// read-only data directory, a full disk) only means the next backend reads the table again.
fn keep_file(sha256: &str, path: &Path, code: &[u8], installation: &Installation) {
    let note = serde_json::to_vec(installation).unwrap_or_default();
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| erasure_rule_host::write_precompiled_file(path, code, &note));
    match written {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_file(dir.join(format!("{sha256}.cwasm")));
            }
        }
        Err(e) => pgrx::debug1!(
            "pg_erasure: the precompiled module could not be kept in {}: {e}",
            path.display()
        ),
    }
}

/// What every call of one request shares.
pub struct CallContext<'a> {
    pub now: &'a str,
    pub request: &'a serde_json::Value,
    pub holds: &'a [Hold],
}

impl CallContext<'_> {
    /// The input of one call but for its records, for every module in turn
    /// ([`ActiveModule::evaluate`] fills in its slot and configuration); the records go in a
    /// [`RecordBatch`], written once and lent to each module.
    pub fn input(&self) -> EvalInput {
        EvalInput {
            abi: erasure_abi::ABI_VERSION,
            slot: String::new(),
            now: self.now.to_owned(),
            config: serde_json::Value::Null,
            request: self.request.clone(),
            holds: self.holds.to_vec(),
            records: Vec::new(),
        }
    }
}

impl ActiveModule {
    /// Decides `records` (one decision each, in order) within the configured limits, `input`
    /// made this module's (its slot and configuration).
    pub fn evaluate(
        &self,
        input: &mut EvalInput,
        records: &RecordBatch,
    ) -> ExtResult<Vec<Decision>> {
        input.slot.clone_from(&self.slot);
        input.config.clone_from(&self.config);
        let limits = guc::limits();
        with_host(|host| {
            host.evaluate_batch(&self.module, input, records, &limits)
                .map_err(|source| ExtError::Module {
                    slot: self.slot.clone(),
                    sha256: self.sha256.clone(),
                    source,
                })
        })
    }
}
