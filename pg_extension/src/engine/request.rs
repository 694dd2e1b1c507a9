//! Erasure requests: ids and confirmation codes, the `erasure.requests` row, deadlines, the
//! report, and the record of a failed request, which must survive the rollback of its erasure.

use erasure_core::subject::Subject;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

use super::context;
use super::erase::{erase, EngineContext, Outcome, RequestInfo, TableCounts};
use super::failures::{self, FailedRequest};
use super::jsonb_datum::JsonbDatum;
use super::statements::{oids, prepared, run, StatementId};
use crate::error::{ExtError, ExtResult};

/// Where a request came from: the three ways the data-deletion page offers, plus callers.
pub fn check_source(source: &str) -> ExtResult<()> {
    let ok = !source.is_empty()
        && source.len() <= 32
        && source
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ExtError::InvalidArgument(
            "source must be a short lowercase word such as api, self_service, email, meta_callback"
                .into(),
        ))
    }
}

struct Identity {
    request_id: i64,
    confirmation_code: String,
    salt: String,
    engine: EngineContext,
}

/// Everything a request needs before it starts: a new id and confirmation code (only for a
/// real request: a preview takes neither), the subject-hash salt, and the active data map,
/// modules and time. No statement runs unless the backend's cached context was invalidated.
fn new_identity(client: &SpiClient<'_>, real: bool) -> ExtResult<Identity> {
    let ctx = context::current(client)?;
    Ok(Identity {
        request_id: if real { ctx.next_request_id() } else { 0 },
        confirmation_code: if real {
            context::confirmation_code()?
        } else {
            String::new()
        },
        engine: EngineContext {
            map_id: ctx.map_id,
            any_active_hold: ctx.any_active_hold,
            modules: ctx.modules,
            now: context::transaction_time(),
        },
        salt: ctx.salt,
    })
}

/// `request_erasure`: erases, records the request, returns the report. On any error the
/// erasure rolls back with the caller's transaction, and the failure is recorded by a
/// background worker in a transaction of its own.
pub fn request_erasure(subject: &str, org_id: Option<i64>, source: &str) -> JsonbDatum {
    let (identity, parsed) = Spi::connect(
        |client| -> ExtResult<(Identity, Result<Subject, ExtError>)> {
            Ok((
                new_identity(client, true)?,
                Subject::parse(subject).map_err(ExtError::from),
            ))
        },
    )
    .unwrap_or_else(|e| e.raise());

    let failed = FailedRequest {
        request_id: identity.request_id,
        confirmation_code: identity.confirmation_code.clone(),
        subject_kind: parsed.as_ref().ok().map(|s| s.kind.as_str().to_owned()),
        subject_hash: parsed.as_ref().ok().map(|s| s.hash(&identity.salt)),
        org_id,
        source: source.chars().take(32).collect(),
        error_code: String::new(),
        error_message: String::new(),
    };
    failures::guard(failed, || {
        check_source(source).unwrap_or_else(|e| e.raise());
        let subject = parsed.unwrap_or_else(|e| e.raise());
        Spi::connect_mut(|client| record_completed(client, &identity, &subject, org_id, source))
            .unwrap_or_else(|e| e.raise())
    })
}

/// How long after a request its data may still be in backups: they rotate within 30 days.
const BACKUP_ROTATION_US: i64 = 30 * 24 * 3600 * 1_000_000;

/// The report `request_erasure` returns and stores: the erasure's outcome and the request's
/// identity.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    outcome: &'a Outcome,
    request_id: i64,
    confirmation_code: &'a str,
    status: &'static str,
    source: &'a str,
    completed_at: String,
    backups_purged_by: String,
}

/// The audit trail's entry for a completed request: hashes and counts, nothing personal.
#[derive(Serialize)]
struct AuditDetail<'a> {
    subject_kind: &'a str,
    subject_hash: &'a str,
    totals: &'a TableCounts,
    modules: &'a BTreeMap<String, String>,
}

fn to_json<T: Serialize>(value: &T) -> ExtResult<String> {
    serde_json::to_string(value).map_err(|e| ExtError::Internal(e.to_string()))
}

fn record_completed(
    client: &mut SpiClient<'_>,
    identity: &Identity,
    subject: &Subject,
    org_id: Option<i64>,
    source: &str,
) -> ExtResult<JsonbDatum> {
    let hash = subject.hash(&identity.salt);
    let info = RequestInfo {
        request_id: identity.request_id,
        subject,
        subject_hash: &hash,
        org_id,
        source,
    };
    let outcome = erase(client, &info, &identity.engine)?;
    // The times are taken here once, so the report's texts and the row's columns agree; every
    // value is plain text or bytes, parsed once by the INSERT, and the stored report is returned.
    let completed_at = context::clock_time();
    let backups_purged_by = context::transaction_start() + BACKUP_ROTATION_US;
    let report = to_json(&Report {
        outcome: &outcome,
        request_id: identity.request_id,
        confirmation_code: &identity.confirmation_code,
        status: "completed",
        source,
        completed_at: context::rfc3339(completed_at),
        backups_purged_by: context::rfc3339(backups_purged_by),
    })?;
    let audit = to_json(&AuditDetail {
        subject_kind: subject.kind.as_str(),
        subject_hash: &hash,
        totals: &outcome.totals,
        modules: &outcome.modules,
    })?;
    let decision_log = to_json(&outcome.decision_log)?.into_bytes();
    let stmt = prepared(
        client,
        StatementId::Fixed("insert_request"),
        || {
            "WITH r AS (
                INSERT INTO erasure.requests (id, confirmation_code, status, subject_kind, subject_hash, org_id, source,
                                              requested_at, acknowledge_by, complete_by, completed_at, backups_purged_by, report,
                                              decision_log)
                VALUES ($1, $2, 'completed', $3, $4, $5, $6, now(), now() + interval '7 days', now() + interval '30 days',
                        $7, $8, $9::jsonb, $10)
                RETURNING report),
             a AS (
                INSERT INTO erasure.audit_log (event, request_id, detail)
                VALUES ('erasure_completed', $1, $11::jsonb))
             SELECT report FROM r"
                .into()
        },
        || {
            oids(&[
                pg_sys::INT8OID,
                pg_sys::TEXTOID,
                pg_sys::TEXTOID,
                pg_sys::TEXTOID,
                pg_sys::INT8OID,
                pg_sys::TEXTOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::TEXTOID,
                pg_sys::BYTEAOID,
                pg_sys::TEXTOID,
            ])
        },
    )?;
    let timestamp = |ts: pg_sys::TimestampTz| {
        TimestampWithTimeZone::try_from(ts).map_err(|e| ExtError::Internal(e.to_string()))
    };
    let row = run(
        client,
        &stmt,
        &[
            identity.request_id.into(),
            identity.confirmation_code.as_str().into(),
            subject.kind.as_str().into(),
            hash.as_str().into(),
            org_id.into(),
            source.into(),
            timestamp(completed_at)?.into(),
            timestamp(backups_purged_by)?.into(),
            report.as_str().into(),
            decision_log.into(),
            audit.as_str().into(),
        ],
    )?
    .first();
    JsonbDatum::transfer(&row, 1)
}

/// `preview_erasure`: the same erasure, run inside a subtransaction that is always rolled back,
/// so the report is exactly what `request_erasure` would do and nothing changes.
pub fn preview_erasure(subject: &str, org_id: Option<i64>) -> JsonB {
    let subject = Subject::parse(subject).unwrap_or_else(|e| ExtError::from(e).raise());
    let mut report = preview_outcome(&subject, org_id, None).unwrap_or_else(|e| e.raise());
    let obj = report.as_object_mut().expect("report is an object");
    obj.insert("request_id".into(), serde_json::Value::Null);
    obj.insert("confirmation_code".into(), serde_json::Value::Null);
    obj.insert("status".into(), json!("preview"));
    JsonB(report)
}

/// The outcome of erasing `subject` now, computed and rolled back; `candidate` replaces the
/// active module of one slot (`(slot, sha256)`) for a shadow evaluation.
pub fn preview_outcome(
    subject: &Subject,
    org_id: Option<i64>,
    candidate: Option<(String, String)>,
) -> ExtResult<serde_json::Value> {
    super::subxact::rolled_back(|| {
        Spi::connect_mut(|client| -> ExtResult<serde_json::Value> {
            let mut identity = new_identity(client, false)?;
            if let Some((slot, sha)) = &candidate {
                identity.engine.modules.retain(|(s, _)| s != slot);
                identity.engine.modules.push((slot.clone(), sha.clone()));
            }
            let hash = subject.hash(&identity.salt);
            let info = RequestInfo {
                request_id: 0,
                subject,
                subject_hash: &hash,
                org_id,
                source: "preview",
            };
            let outcome = erase(client, &info, &identity.engine)?;
            serde_json::to_value(&outcome).map_err(|e| ExtError::Internal(e.to_string()))
        })
    })
}
