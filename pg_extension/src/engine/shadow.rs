//! Shadow evaluation: what a candidate rule module (installed, not active) would decide, side
//! by side with the active one, changing nothing.

use std::collections::BTreeMap;

use erasure_abi::{Decision, Record};
use erasure_core::decide::combine;
use erasure_core::subject::Subject;
use erasure_rule_host::RecordBatch;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use serde_json::{json, Value};

use super::erase::DecisionLog;
use super::modules::installed_slot;
use super::request::preview_outcome;
use super::rules::{self, ActiveModule, CallContext};
use crate::error::{ExtError, ExtResult};
use crate::guc;

/// Erases `subject` twice in rolled-back subtransactions, once with the active modules and
/// once with the candidate in its slot, and reports both outcomes per table.
pub fn evaluate_module(sha256: &str, subject: &str, org_id: Option<i64>) -> ExtResult<Value> {
    let subject = Subject::parse(subject)?;
    let slot = Spi::connect(|client| installed_slot(client, sha256))?;
    let active = preview_outcome(&subject, org_id, None)?;
    let candidate = preview_outcome(&subject, org_id, Some((slot.clone(), sha256.to_owned())))?;
    let mut tables = serde_json::Map::new();
    let mut changed = Vec::new();
    if let Some(active_tables) = active["tables"].as_object() {
        for (table, counts) in active_tables {
            let other = candidate["tables"][table].clone();
            if &other != counts {
                changed.push(table.clone());
            }
            tables.insert(table.clone(), json!({"active": counts, "candidate": other}));
        }
    }
    Ok(json!({
        "subject_kind": subject.kind.as_str(),
        "slot": slot,
        "active_module": active["modules"][&slot],
        "candidate_module": sha256,
        "differs": !changed.is_empty(),
        "changed_tables": changed,
        "tables": tables,
        "active_totals": active["totals"],
        "candidate_totals": candidate["totals"],
    }))
}

/// Decides the records of the last `last_n` completed requests again, with the candidate in
/// its slot and the other slot's active module, and counts the verdicts that would change.
pub fn replay_module(client: &SpiClient<'_>, sha256: &str, last_n: i32) -> ExtResult<Value> {
    let slot = installed_slot(client, sha256)?;
    let candidate = rules::load(client, sha256)?;
    let active: Vec<(String, String)> = client
        .select(
            "SELECT slot, sha256 FROM erasure.modules WHERE active AND slot <> $1",
            None,
            &[slot.as_str().into()],
        )?
        .map(|row| -> ExtResult<(String, String)> {
            Ok((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
            ))
        })
        .collect::<ExtResult<_>>()?;
    let mut modules: Vec<std::rc::Rc<ActiveModule>> = vec![candidate];
    for (s, sha) in &active {
        // Replays carry no holds, and without a hold the legal_hold slot is not asked.
        if s != "legal_hold" {
            modules.push(rules::load(client, sha)?);
        }
    }
    let requests = client.select(
        "SELECT id, subject_kind, org_id, source,
                to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), decision_log
           FROM erasure.requests
          WHERE status = 'completed' AND decision_log IS NOT NULL
          ORDER BY id DESC LIMIT $1",
        None,
        &[last_n.into()],
    )?;
    let batch = guc::DECISION_BATCH_ROWS.get().max(1) as usize;
    let mut by_request = Vec::new();
    let (mut records_total, mut differing_total) = (0usize, 0usize);
    for row in requests {
        let id: i64 = row.get(1)?.unwrap_or_default();
        let request = json!({
            "request_id": id,
            "subject_kind": row.get::<String>(2)?,
            "org_id": row.get::<i64>(3)?,
            "source": row.get::<String>(4)?,
        });
        let now: String = row.get(5)?.unwrap_or_default();
        let bytes: Vec<u8> = row.get(6)?.unwrap_or_default();
        let log: DecisionLog =
            serde_json::from_slice(&bytes).map_err(|e| ExtError::Internal(e.to_string()))?;
        let ctx = CallContext {
            now: &now,
            request: &request,
            holds: &[],
        };
        let mut changes: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let mut differing = 0;
        let mut input = ctx.input();
        for chunk in log.entries.chunks(batch) {
            // Read back as records, so a log that is not what the extension wrote is refused
            // here rather than given to the modules.
            let records = chunk
                .iter()
                .map(|e| serde_json::from_str::<Record>(e.record.get()))
                .collect::<Result<Vec<Record>, _>>()
                .map_err(|e| ExtError::Internal(format!("decision log of request {id}: {e}")))?;
            let batch_of_records = RecordBatch::of(&records);
            let mut answers: Vec<Vec<Decision>> = Vec::new();
            for m in &modules {
                answers.push(m.evaluate(&mut input, &batch_of_records)?);
            }
            for ((i, entry), record) in chunk.iter().enumerate().zip(&records) {
                let pairs: Vec<(&Decision, &str)> = answers
                    .iter()
                    .zip(&modules)
                    .map(|(a, m)| (&a[i], m.sha256.as_str()))
                    .collect();
                let verdict = combine(&pairs);
                let now_action = verdict.action.ledger_word();
                if now_action != entry.action || verdict.until != entry.until {
                    differing += 1;
                    *changes
                        .entry(record.table.to_string())
                        .or_default()
                        .entry(format!("{} -> {}", entry.action, now_action))
                        .or_default() += 1;
                }
            }
        }
        records_total += log.entries.len();
        differing_total += differing;
        by_request.push(json!({
            "request_id": id,
            "records": log.entries.len(),
            "log_truncated": log.truncated,
            "differing": differing,
            "changes": changes,
        }));
    }
    Ok(json!({
        "slot": slot,
        "candidate_module": sha256,
        "requests": by_request.len(),
        "records": records_total,
        "differing_records": differing_total,
        "by_request": by_request,
    }))
}
