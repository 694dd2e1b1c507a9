use erasure_core::subject::Subject;
use pgrx::prelude::*;

use crate::engine::{context, modules::audit};
use crate::error::{ExtError, ExtResult, OrRaise};

/// Places a legal hold: the subject's data (or, for `org:`, the organization's) is kept by
/// every erasure until the hold is released or expires.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn place_hold(
    subject: &str,
    case_ref: &str,
    org_id: default!(Option<i64>, "NULL"),
    expires_at: default!(Option<pgrx::datum::TimestampWithTimeZone>, "NULL"),
) -> i64 {
    let subject = Subject::parse(subject).map_err(ExtError::from).or_raise();
    if case_ref.trim().is_empty() || case_ref.len() > 200 {
        ExtError::InvalidArgument("case_ref must be 1 to 200 characters".into()).raise();
    }
    Spi::connect_mut(|client| -> ExtResult<i64> {
        let hash = subject.hash(&context::current(client)?.salt);
        let org = match (subject.kind, &subject.value) {
            (erasure_core::subject::SubjectKind::Org, erasure_core::subject::SubjectValue::Id(id)) => Some(*id),
            _ => org_id,
        };
        let id: Option<i64> = client
            .update(
                "INSERT INTO erasure.legal_holds (subject_kind, subject_hash, org_id, case_ref, expires_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                None,
                &[
                    subject.kind.as_str().into(),
                    hash.as_str().into(),
                    org.into(),
                    case_ref.into(),
                    expires_at.into(),
                ],
            )?
            .first()
            .get_one()?;
        let id = id.ok_or_else(|| ExtError::Internal("hold insert returned nothing".into()))?;
        audit(client, "hold_placed", serde_json::json!({"hold_id": id, "subject_kind": subject.kind.as_str(), "subject_hash": hash}))?;
        Ok(id)
    })
    .or_raise()
}

/// Releases a legal hold; rows it kept become due for `purge_due()` once their retention ends.
#[pg_extern(security_definer, volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn release_hold(hold_id: i64) {
    Spi::connect_mut(|client| -> ExtResult<()> {
        let n = client
            .update(
                "UPDATE erasure.legal_holds SET released_at = now() WHERE id = $1 AND released_at IS NULL",
                None,
                &[hold_id.into()],
            )?
            .len();
        if n == 0 {
            return Err(ExtError::NotFound(format!("no active legal hold has id {hold_id}")));
        }
        audit(client, "hold_released", serde_json::json!({"hold_id": hold_id}))
    })
    .or_raise()
}
