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
