//! Installing and activating rule modules. A module is validated and compiled once, here; the
//! backends that use it later only load the precompiled artifact.

use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde_json::json;

use super::rules::{with_host, SLOTS};
use super::statements::first_value;
use crate::error::{ExtError, ExtResult};
use crate::guc;

/// The default modules, built from `rules-wasm/` and embedded at build time.
pub const RETENTION_WASM: &[u8] = include_bytes!(env!("ERASURE_RETENTION_WASM"));
pub const LEGAL_HOLD_WASM: &[u8] = include_bytes!(env!("ERASURE_LEGAL_HOLD_WASM"));

/// The retention schedules shipped in `policies/retention/`, by regime.
pub const REGIMES: [(&str, &str); 3] = [
    (
        "eu-gdpr",
        include_str!("../../../policies/retention/eu-gdpr.json"),
    ),
    (
        "in-dpdp",
        include_str!("../../../policies/retention/in-dpdp.json"),
    ),
    (
        "us-ccpa",
        include_str!("../../../policies/retention/us-ccpa.json"),
    ),
];

fn check_slot(slot: &str) -> ExtResult<()> {
    if SLOTS.contains(&slot) {
        Ok(())
    } else {
        Err(ExtError::InvalidArgument(format!(
            "unknown slot '{slot}': slots are {}",
            SLOTS.join(", ")
        )))
    }
}

/// Validates, compiles and stores a module; returns the sha256 naming this installation.
pub fn install(
    client: &mut SpiClient<'_>,
    slot: &str,
    wasm: &[u8],
    config: serde_json::Value,
) -> ExtResult<String> {
    check_slot(slot)?;
    if !config.is_object() {
        return Err(ExtError::InvalidArgument(
            "config must be a JSON object".into(),
        ));
    }
    let limits = guc::limits();
    let prepared = with_host(|host| {
        host.prepare(wasm, &config, slot, &limits)
            .map_err(ExtError::ModuleRejected)
    })?;
    // Installing an installation again stores its code as this build compiles it: after an
    // upgrade that changed wasmtime, the stored code no longer loads (backends compile the
    // wasm instead), and this is how an administrator refreshes it.
    let stored = client.update(
        "INSERT INTO erasure.modules (sha256, slot, wasm, precompiled, config, size_bytes)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (sha256) DO UPDATE SET precompiled = EXCLUDED.precompiled
           WHERE modules.precompiled IS DISTINCT FROM EXCLUDED.precompiled
         RETURNING xmax = 0",
        None,
        &[
            prepared.sha256_hex.as_str().into(),
            slot.into(),
            wasm.to_vec().into(),
            prepared.precompiled.clone().into(),
            JsonB(config).into(),
            (wasm.len() as i32).into(),
        ],
    )?;
    // A row when the installation is new (true) or its stored code was replaced (false);
    // none when it was installed already with this code.
    let event = match stored.is_empty() {
        true => None,
        false => match stored.first().get::<bool>(1)? {
            Some(true) => Some("module_installed"),
            _ => Some("module_code_replaced"),
        },
    };
    if let Some(event) = event {
        audit(
            client,
            event,
            json!({"slot": slot, "sha256": prepared.sha256_hex, "size_bytes": wasm.len()}),
        )?;
    }
    Ok(prepared.sha256_hex)
}

/// Makes an installed module the active one of its slot, in one statement pair within the
/// caller's transaction; the previous module stays installed for a rollback.
pub fn activate(client: &mut SpiClient<'_>, slot: &str, sha256: &str) -> ExtResult<()> {
    check_slot(slot)?;
    let installed_for = installed_slot(client, sha256)?;
    if installed_for != slot {
        return Err(ExtError::InvalidArgument(format!(
            "module {sha256} was installed for slot '{installed_for}', not '{slot}'"
        )));
    }
    let previous: Option<String> = client
        .update(
            "WITH off AS (UPDATE erasure.modules SET active = false WHERE slot = $1 AND active AND sha256 <> $2 RETURNING sha256)
             SELECT min(sha256) FROM off",
            None,
            &[slot.into(), sha256.into()],
        )?
        .first()
        .get_one()?;
    client.update(
        "UPDATE erasure.modules SET active = true WHERE sha256 = $1 AND NOT active",
        None,
        &[sha256.into()],
    )?;
    audit(
        client,
        "module_activated",
        json!({"slot": slot, "sha256": sha256, "previous": previous}),
    )?;
    Ok(())
}

/// The slot an installed module was installed for.
pub fn installed_slot(client: &SpiClient<'_>, sha256: &str) -> ExtResult<String> {
    first_value::<String>(client.select(
        "SELECT slot FROM erasure.modules WHERE sha256 = $1",
        None,
        &[sha256.into()],
    )?)?
    .ok_or_else(|| ExtError::NotFound(format!("no installed module has sha256 {sha256}")))
}

/// Installs and activates the two default modules, retention configured for `regime`.
pub fn install_defaults(client: &mut SpiClient<'_>, regime: &str) -> ExtResult<serde_json::Value> {
    let (_, schedule) = REGIMES.iter().find(|(r, _)| *r == regime).ok_or_else(|| {
        ExtError::InvalidArgument(format!(
            "unknown regime '{regime}': shipped regimes are {}",
            REGIMES.map(|(r, _)| r).join(", ")
        ))
    })?;
    let config: serde_json::Value =
        serde_json::from_str(schedule).map_err(|e| ExtError::Internal(e.to_string()))?;
    let retention = install(client, "retention", RETENTION_WASM, config)?;
    activate(client, "retention", &retention)?;
    let legal_hold = install(client, "legal_hold", LEGAL_HOLD_WASM, json!({}))?;
    activate(client, "legal_hold", &legal_hold)?;
    Ok(json!({"retention": retention, "legal_hold": legal_hold, "regime": regime}))
}

pub fn audit(client: &mut SpiClient<'_>, event: &str, detail: serde_json::Value) -> ExtResult<()> {
    client.update(
        "INSERT INTO erasure.audit_log (event, detail) VALUES ($1, $2)",
        None,
        &[event.into(), JsonB(detail).into()],
    )?;
    Ok(())
}
