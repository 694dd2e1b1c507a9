use pgrx::prelude::*;
use pgrx::JsonB;

use crate::engine::jsonb_datum::JsonbDatum;
use crate::engine::statements::first_value;
use crate::engine::{purge, request};
use crate::error::{ExtError, OrRaise};

/// Erases everything of a subject the rules do not keep, in the caller's transaction.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn request_erasure(
    subject: Option<&str>,
    org_id: default!(Option<i64>, "NULL"),
    source: default!(Option<&str>, "'api'"),
) -> JsonbDatum {
    // NULL is malformed like any other bad subject or source: a clear 22023, recorded as failed.
    request::request_erasure(subject.unwrap_or(""), org_id, source.unwrap_or(""))
}

/// What `request_erasure` would do, computed by running it and rolling it back.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn preview_erasure(subject: Option<&str>, org_id: default!(Option<i64>, "NULL")) -> JsonB {
    request::preview_erasure(subject.unwrap_or(""), org_id)
}

/// Status of a request by its confirmation code.
#[pg_extern(security_definer, stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn request_status(confirmation_code: &str) -> JsonB {
    Spi::connect(|client| {
        let row: Option<JsonB> = first_value(client.select(
            "SELECT jsonb_build_object(
                    'request_id', id, 'confirmation_code', confirmation_code, 'status', status,
                    'subject_kind', subject_kind, 'source', source,
                    'requested_at', requested_at, 'acknowledge_by', acknowledge_by,
                    'complete_by', complete_by, 'completed_at', completed_at,
                    'backups_purged_by', backups_purged_by,
                    'error_code', error_code, 'error_message', error_message,
                    'totals', report->'totals')
                   FROM erasure.requests WHERE confirmation_code = $1",
            None,
            &[confirmation_code.into()],
        )?)?;
        row.ok_or_else(|| {
            ExtError::NotFound("no erasure request has this confirmation code".into())
        })
    })
    .or_raise()
}

/// Deletes kept rows whose retention has ended and whose holds are lifted: all of them, or at
/// most `max_batches` batches (`erasure.purge_due_in_batches()` commits after each).
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn purge_due(max_batches: default!(Option<i64>, "NULL")) -> JsonB {
    if max_batches.is_some_and(|m| m < 1) {
        ExtError::InvalidArgument("max_batches must be at least 1 (or NULL for no limit)".into())
            .raise();
    }
    Spi::connect_mut(|client| purge::purge_due(client, max_batches).map(JsonB)).or_raise()
}

/// What an erasure of a subject kind runs under the active data map: root look-ups, then the
/// steps children first, each with its scope and the statement that erases (or detaches) its rows.
#[pg_extern(security_definer, stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn explain_plan(subject_kind: &str) -> JsonB {
    Spi::connect(|client| crate::engine::datamap::explain(client, subject_kind).map(JsonB))
        .or_raise()
}

/// Drops every backend's cached request context; called by the trigger
/// `erasure.context_changed` after a write to one of the tables the context is read from.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn invalidate_request_context(source: pg_sys::Oid) {
    crate::engine::context::invalidate(source);
}

/// Validates a data map against the catalog and makes it the active one.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn load_data_map(map: JsonB) {
    Spi::connect_mut(|client| crate::engine::datamap::load(client, map.0)).or_raise();
}

/// The data map of the reference WhatsApp CRM, as shipped in `policies/data_map.json`.
#[pg_extern(immutable, parallel_safe)]
fn reference_data_map() -> JsonB {
    JsonB(serde_json::from_str(REFERENCE_DATA_MAP).expect("shipped data map is valid JSON"))
}

const REFERENCE_DATA_MAP: &str = include_str!("../../../policies/data_map.json");
