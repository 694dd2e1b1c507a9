//! Erasure requests: ids and confirmation codes, the `erasure.requests` row, deadlines, the
//! report, and the record of a failed request, which must survive the rollback of its erasure.

use erasure_core::subject::Subject;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;
use serde::Serialize;
use serde_json::json;

use super::context;
use super::erase::{erase, EngineContext, Outcome, RequestInfo};
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

/// The report `request_erasure` returns and stores: the erasure's outcome and the request's
/// identity; `completed_at` and `backups_purged_by` are added by the statement that records it.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    outcome: &'a Outcome,
    request_id: i64,
    confirmation_code: &'a str,
    status: &'static str,
    source: &'a str,
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
    // Serialised straight to text and parsed once, by the INSERT; the stored jsonb is what is
    // returned.
    let report = serde_json::to_string(&Report {
        outcome: &outcome,
        request_id: identity.request_id,
        confirmation_code: &identity.confirmation_code,
        status: "completed",
        source,
    })
    .map_err(|e| ExtError::Internal(e.to_string()))?;
    // The request row and its audit entry, in one statement.
    let stmt = prepared(
        client,
        StatementId::Fixed("insert_request"),
        || {
            "WITH r AS (
                INSERT INTO erasure.requests (id, confirmation_code, status, subject_kind, subject_hash, org_id, source,
                                              requested_at, acknowledge_by, complete_by, completed_at, backups_purged_by, report,
                                              decision_log)
                SELECT $1, $2, 'completed', $3, $4, $5, $6, now(), now() + interval '7 days', now() + interval '30 days',
                       c.at, now() + interval '30 days',
                       $7::jsonb || jsonb_build_object(
                           'completed_at', to_char(c.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                           'backups_purged_by', to_char((now() + interval '30 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')),
                       $8
                  FROM (SELECT clock_timestamp() AS at) c
                RETURNING report),
             a AS (
                INSERT INTO erasure.audit_log (event, request_id, detail)
                SELECT 'erasure_completed', $1, jsonb_build_object('subject_kind', $3::text, 'subject_hash', $4::text,
                        'totals', r.report -> 'totals', 'modules', r.report -> 'modules')
                  FROM r)
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
                pg_sys::TEXTOID,
                pg_sys::BYTEAOID,
            ])
        },
    )?;
    let decision_log =
        serde_json::to_vec(&outcome.decision_log).map_err(|e| ExtError::Internal(e.to_string()))?;
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
            report.as_str().into(),
            decision_log.into(),
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
