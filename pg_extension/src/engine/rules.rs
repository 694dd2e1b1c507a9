//! The rule modules of this backend: the wasmtime engine is created on first use (never in the
//! postmaster), each installed module is loaded once from its precompiled form and cached by
//! sha256, and every call runs with the fuel, memory and output limits of the GUCs.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use erasure_abi::{Decision, EvalInput, Hold, Record};
use erasure_rule_host::{LoadedModule, RuleHost};
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
pub fn load(client: &SpiClient<'_>, sha256: &str) -> ExtResult<Rc<ActiveModule>> {
    if let Some(m) = LOADED.with(|l| l.borrow().get(sha256).cloned()) {
        return Ok(m);
    }
    let stmt = prepared(
        client,
        StatementId::Fixed("module_by_sha"),
        || "SELECT slot, config, precompiled, wasm FROM erasure.modules WHERE sha256 = $1".into(),
        || vec![PgOid::from(pg_sys::TEXTOID)],
    )?;
    let row = client.select(&*stmt, None, &[sha256.into()])?.first();
    if row.is_empty() {
        return Err(ExtError::NotFound(format!(
            "no installed module has sha256 {sha256}"
        )));
    }
    let slot: String = row.get(1)?.unwrap_or_default();
    let config: JsonB = row.get(2)?.unwrap_or(JsonB(serde_json::json!({})));
    let precompiled: Vec<u8> = row.get(3)?.unwrap_or_default();
    let wasm: Vec<u8> = row.get(4)?.unwrap_or_default();
    let module = with_host(|host| {
        // SAFETY: `precompiled` was produced by `RuleHost::prepare` at install time and is
        // writable only by the extension's owner; a wasmtime or configuration change since
        // makes deserialisation fail, and then the module is compiled again from its wasm.
        match unsafe { host.load_precompiled(&precompiled) } {
            Ok(m) => Ok(m),
            Err(_) => host.load_wasm(&wasm).map_err(|source| ExtError::Module {
                slot: slot.clone(),
                sha256: sha256.to_owned(),
                source,
            }),
        }
    })?;
    let active = Rc::new(ActiveModule {
        slot,
        sha256: sha256.to_owned(),
        config: config.0,
        module,
    });
    LOADED.with(|l| l.borrow_mut().insert(sha256.to_owned(), active.clone()));
    Ok(active)
}

/// What every call of one request shares.
pub struct CallContext<'a> {
    pub now: &'a str,
    pub request: &'a serde_json::Value,
    pub holds: &'a [Hold],
}

impl ActiveModule {
    /// Decides `records` (one decision each, in order) within the configured limits.
    pub fn evaluate(
        &self,
        ctx: &CallContext<'_>,
        records: Vec<Record>,
    ) -> ExtResult<Vec<Decision>> {
        let input = EvalInput {
            abi: erasure_abi::ABI_VERSION,
            slot: self.slot.clone(),
            now: ctx.now.to_owned(),
            config: self.config.clone(),
            request: ctx.request.clone(),
            holds: ctx.holds.to_vec(),
            records,
        };
        let limits = guc::limits();
        with_host(|host| {
            host.evaluate(&self.module, &input, &limits)
                .map_err(|source| ExtError::Module {
                    slot: self.slot.clone(),
                    sha256: self.sha256.clone(),
                    source,
                })
        })
    }
}
