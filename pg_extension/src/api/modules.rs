use pgrx::prelude::*;
use pgrx::JsonB;

use crate::engine::modules;
use crate::error::OrRaise;

/// Validates, compiles and stores a rule module; returns its installation sha256.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn install_module(slot: &str, wasm: &[u8], config: default!(JsonB, "'{}'")) -> String {
    Spi::connect_mut(|client| modules::install(client, slot, wasm, config.0)).or_raise()
}

/// Makes an installed module the active one of its slot.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn activate_module(slot: &str, sha256: &str) {
    Spi::connect_mut(|client| modules::activate(client, slot, sha256)).or_raise()
}

/// Installs and activates the shipped retention (for a regime) and legal-hold modules.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn install_default_modules(regime: default!(&str, "'eu-gdpr'")) -> JsonB {
    Spi::connect_mut(|client| modules::install_defaults(client, regime).map(JsonB)).or_raise()
}

/// Shadow evaluation: the outcome of erasing `subject` with the candidate module in its slot,
/// side by side with the active modules' outcome. Changes nothing.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn evaluate_module(sha256: &str, subject: &str, org_id: default!(Option<i64>, "NULL")) -> JsonB {
    crate::engine::shadow::evaluate_module(sha256, subject, org_id)
        .map(JsonB)
        .or_raise()
}

/// Replays the decisions of the last `last_n` completed requests with the candidate module and
/// counts the verdicts that would change.
#[pg_extern(security_definer, stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn replay_module(sha256: &str, last_n: default!(i32, "100")) -> JsonB {
    Spi::connect(|client| crate::engine::shadow::replay_module(client, sha256, last_n.max(0)))
        .map(JsonB)
        .or_raise()
}
