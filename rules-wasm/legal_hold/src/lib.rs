//! Rule module `legal_hold`: keeps data covered by an active legal hold.
//!
//! The host passes only the holds that are active and apply to this
//! request, so the module does no date checks of its own. For each record,
//! the first hold that covers its category (a hold without `categories`
//! covers all) gives `hold`; otherwise the answer is `erase`, which means
//! "no objection": the host combines slots by precedence, so erase never
//! overrides another slot's retention. The configuration is ignored.

use erasure_rules_sdk::{covering_hold, hold_decision, Decision, EvalInput, Hold, Record};

erasure_rules_sdk::export_rules!(evaluate);

/// The module's rule function (exported through the SDK).
pub fn evaluate(input: &EvalInput) -> Result<Vec<Decision>, String> {
    Ok(input
        .records
        .iter()
        .map(|record| decide(&input.holds, record))
        .collect())
}

fn decide(holds: &[Hold], record: &Record) -> Decision {
    covering_hold(holds, record).map_or(Decision::Erase, hold_decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use erasure_rules_sdk::ABI_VERSION;
    use serde_json::json;

    fn hold(id: i64, case: &str, categories: Option<&[&str]>) -> Hold {
        Hold {
            id,
            case: case.into(),
            categories: categories.map(|c| c.iter().map(|s| s.to_string()).collect()),
            expires_at: None,
        }
    }

    fn record(category: &str) -> Record {
        Record {
            table: format!("{category}s").into(),
            category: category.into(),
            attrs: Default::default(),
            group: true,
        }
    }

    fn run(holds: Vec<Hold>, categories: &[&str]) -> Vec<Decision> {
        evaluate(&EvalInput {
            abi: ABI_VERSION,
            slot: "legal_hold".into(),
            now: "2025-06-01T00:00:00Z".into(),
            // Ignored: even nonsense must not change the answer.
            config: json!({"action": "keep"}),
            request: json!({}),
            holds,
            records: categories.iter().map(|c| record(c)).collect(),
        })
        .unwrap()
    }

    fn held(case: &str) -> Decision {
        Decision::Hold { case: case.into() }
    }

    #[test]
    fn no_holds_means_no_objection() {
        assert_eq!(
            run(vec![], &["invoice", "contact"]),
            vec![Decision::Erase, Decision::Erase]
        );
        assert_eq!(run(vec![], &[]), vec![]);
    }

    #[test]
    fn hold_without_categories_covers_everything() {
        assert_eq!(
            run(vec![hold(1, "CASE-1", None)], &["invoice", "contact"]),
            vec![held("CASE-1"), held("CASE-1")]
        );
    }

    #[test]
    fn category_hold_covers_only_its_categories() {
        let holds = vec![hold(1, "TAX-AUDIT", Some(&["invoice", "payment"]))];
        assert_eq!(
            run(holds, &["invoice", "contact", "payment"]),
            vec![held("TAX-AUDIT"), Decision::Erase, held("TAX-AUDIT")]
        );
        // An empty list covers nothing.
        assert_eq!(
            run(vec![hold(1, "NONE", Some(&[]))], &["invoice"]),
            vec![Decision::Erase]
        );
    }

    #[test]
    fn first_covering_hold_wins() {
        let holds = vec![
            hold(1, "NARROW", Some(&["invoice"])),
            hold(2, "BROAD", None),
        ];
        assert_eq!(
            run(holds, &["invoice", "contact"]),
            vec![held("NARROW"), held("BROAD")]
        );
    }

    #[test]
    fn blank_case_is_named_by_hold_id() {
        assert_eq!(
            run(vec![hold(42, " ", None)], &["contact"]),
            vec![held("legal hold #42")]
        );
    }

    #[test]
    fn sdk_round_trip_produces_valid_output() {
        let input = serde_json::to_vec(&json!({
            "abi": 1, "slot": "legal_hold", "now": "2025-06-01T00:00:00Z", "config": null, "request": {},
            "holds": [{"id": 9, "case": "LIT-2025-001", "categories": ["invoice"]}],
            "records": [{"table": "invoices", "category": "invoice"}, {"table": "notes", "category": "note"}]
        }))
        .unwrap();
        let out = erasure_rules_sdk::run_json(&input, evaluate);
        assert_eq!(
            erasure_rules_sdk::decode_output(&out, 2).unwrap(),
            vec![held("LIT-2025-001"), Decision::Erase]
        );
    }
}
