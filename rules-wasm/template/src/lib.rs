//! TEMPLATE rule module: copy this crate to write your own policy.
//!
//! The policy, in words:
//!
//! 1. Anything covered by an active legal hold is kept as it is (`hold`).
//! 2. Orders are kept for 3 years from the day they were placed (`retain`), then erased.
//!    When the data map does not expose the order date for a record (group records carry no
//!    dates), the 3 years count from today: counting from now can only keep data longer,
//!    never erase it too early.
//! 3. Everything else is erased.
//!
//! The period and the legal basis can be changed per installation without rebuilding, through
//! the configuration given to `erasure.install_module` (see [`Config`]):
//!
//! ```json
//! {"order_period": "P5Y", "order_basis": "Commercial code s.257: business letters, 5 years"}
//! ```
//!
//! To make your own module (README.md, "Writing a rule module", walks through it):
//!
//! 1. `cp -r rules-wasm/template rules-wasm/<name>`; in its `Cargo.toml` set
//!    `name = "erasure-rule-<name>"`; add `"rules-wasm/<name>"` to `members` in the root
//!    `Cargo.toml`.
//! 2. Edit the policy: the constants and [`Config`] say what is kept and for how long,
//!    [`Policy::decide`] says how one record is decided. Change the tests below to match.
//! 3. `cargo test -p erasure-rule-<name>` runs the tests on your machine, no database needed.
//! 4. `make module NAME=<name>` builds `target/modules/<name>.wasm` to install.
//!
//! Rules of the game (`rules-wasm/ABI.md` has the details): answer exactly one decision per
//! record, in order; use `input.now` as the only clock; no files, network or randomness (the
//! module gets none); return `Err(reason)` to refuse, which stops the erasure and shows the
//! reason to the operator.

use erasure_rules_sdk::{
    attr_timestamp, covering_hold, hold_decision, parse_config, retention_end, Decision, EvalInput,
    Period, Record, Timestamp,
};
use serde::Deserialize;

// Exports `evaluate` below as the module's entry point. Keep this line.
erasure_rules_sdk::export_rules!(evaluate);

/// The data category this policy keeps, as `policies/data_map.json` names it.
pub const KEPT_CATEGORY: &str = "order";

/// The per-row date the keeping period starts from, if the data map exposes it for the
/// table (its `attrs`). The reference map exposes none for orders, so they count from now
/// unless the map is extended with `"attrs": ["placed_at"]`.
pub const START_ATTRIBUTE: &str = "placed_at";

/// How long orders are kept when the configuration does not say (ISO 8601: `P3Y` is three
/// years; `P18M`, `P90D`, `P1Y6M` also work).
pub const DEFAULT_PERIOD: &str = "P3Y";

/// The law that requires keeping them, when the configuration does not say. It is stored
/// with every kept row and shown in reports: cite the actual provision.
pub const DEFAULT_BASIS: &str =
    "Commercial and tax law: order records are kept 3 years (replace with your citation)";

/// What an installation may configure. Every field is optional, so `'{}'` installs the
/// defaults above. A misspelt or unknown key is refused at installation.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long orders are kept, an ISO 8601 period such as `"P3Y"`.
    pub order_period: String,
    /// The legal basis stored with every kept order.
    pub order_basis: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            order_period: DEFAULT_PERIOD.into(),
            order_basis: DEFAULT_BASIS.into(),
        }
    }
}

/// The module's entry point: one decision per record, in record order.
///
/// The configuration is checked first, even when there are no records: the host's
/// installation test calls with none, so a bad configuration is refused when the module is
/// installed rather than in the middle of an erasure.
pub fn evaluate(input: &EvalInput) -> Result<Vec<Decision>, String> {
    let policy = Policy::from_config(parse_config(input)?)?;
    let now = input
        .now_timestamp()
        .map_err(|e| format!("input field \"now\": {e}"))?;
    input
        .records
        .iter()
        .map(|record| policy.decide(record, &input.holds, now))
        .collect()
}

/// The checked configuration.
#[derive(Debug)]
pub struct Policy {
    period: Period,
    basis: String,
}

impl Policy {
    /// Checks the configuration: a valid period and a basis that says something.
    pub fn from_config(config: Config) -> Result<Policy, String> {
        let period = Period::parse(&config.order_period)
            .map_err(|e| format!("invalid config, order_period: {e}"))?;
        if config.order_basis.trim().is_empty() {
            return Err(
                "invalid config, order_basis: name the law that requires keeping orders".into(),
            );
        }
        Ok(Policy {
            period,
            basis: config.order_basis,
        })
    }

    /// Decides one record. The order of the checks is the policy: a hold beats everything.
    pub fn decide(
        &self,
        record: &Record,
        holds: &[erasure_rules_sdk::Hold],
        now: Timestamp,
    ) -> Result<Decision, String> {
        // 1. A legal hold that covers this record's category keeps it unchanged.
        if let Some(hold) = covering_hold(holds, record) {
            return Ok(hold_decision(hold));
        }
        // 2. Orders: kept for the period from their date, or from now without one.
        if &*record.category == KEPT_CATEGORY {
            let start = attr_timestamp(record, START_ATTRIBUTE).unwrap_or(now);
            let until = retention_end(start, &self.period, now)
                .map_err(|e| format!("table {:?}: {e}", record.table))?;
            return Ok(match until {
                Some(until) => Decision::Retain {
                    until,
                    basis: self.basis.as_str().into(),
                },
                // The period is over: nothing left to keep.
                None => Decision::Erase,
            });
        }
        // 3. Everything else.
        Ok(Decision::Erase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erasure_rules_sdk::{Hold, ABI_VERSION};
    use serde_json::{json, Value};

    const NOW: &str = "2025-06-01T12:00:00Z";

    fn record(table: &str, category: &str, attrs: Value) -> Record {
        Record {
            table: table.into(),
            category: category.into(),
            attrs: attrs.as_object().cloned().unwrap_or_default(),
            group: false,
        }
    }

    fn order(placed_at: &str) -> Record {
        record("orders", "order", json!({ "placed_at": placed_at }))
    }

    fn hold(case: &str, categories: Option<&[&str]>) -> Hold {
        Hold {
            id: 1,
            case: case.into(),
            categories: categories.map(|c| c.iter().map(|s| s.to_string()).collect()),
            expires_at: None,
        }
    }

    fn run(config: Value, holds: Vec<Hold>, records: Vec<Record>) -> Result<Vec<Decision>, String> {
        evaluate(&EvalInput {
            abi: ABI_VERSION,
            slot: "retention".into(),
            now: NOW.into(),
            config,
            request: json!({"subject_kind": "contact", "org_id": 1, "source": "api", "request_id": 1}),
            holds,
            records,
        })
    }

    fn one(record: Record) -> Decision {
        run(json!({}), vec![], vec![record]).unwrap().remove(0)
    }

    fn retain(until: &str) -> Decision {
        Decision::Retain {
            until: until.parse().unwrap(),
            basis: DEFAULT_BASIS.into(),
        }
    }

    #[test]
    fn orders_are_kept_three_years_from_their_date() {
        assert_eq!(
            one(order("2024-02-29T10:00:00+02:00")),
            retain("2027-02-28T08:00:00Z")
        );
    }

    #[test]
    fn orders_older_than_three_years_are_erased() {
        assert_eq!(one(order("2022-06-01T12:00:00Z")), Decision::Erase);
        assert_eq!(
            one(order("2022-06-01T12:00:01Z")),
            retain("2025-06-01T12:00:01Z")
        );
    }

    #[test]
    fn orders_without_a_usable_date_count_from_now() {
        let from_now = retain("2028-06-01T12:00:00Z");
        assert_eq!(one(record("orders", "order", json!({}))), from_now);
        assert_eq!(one(order("last week")), from_now);
        let mut group = record("orders", "order", json!({}));
        group.group = true;
        assert_eq!(one(group), from_now);
    }

    #[test]
    fn everything_else_is_erased() {
        for category in ["contact", "message", "order_item", "invoice"] {
            assert_eq!(
                one(record(
                    "t",
                    category,
                    json!({"placed_at": "2025-01-01T00:00:00Z"})
                )),
                Decision::Erase,
                "{category}"
            );
        }
    }

    #[test]
    fn holds_keep_what_they_cover_and_nothing_else() {
        let records = vec![
            order("2025-01-01T00:00:00Z"),
            record("contacts", "contact", json!({})),
            record("invoices", "invoice", json!({})),
        ];
        let held = |case: &str| Decision::Hold { case: case.into() };
        let all = run(json!({}), vec![hold("LIT-1", None)], records.clone()).unwrap();
        assert_eq!(all, vec![held("LIT-1"), held("LIT-1"), held("LIT-1")]);
        let some = run(json!({}), vec![hold("LIT-2", Some(&["contact"]))], records).unwrap();
        assert_eq!(
            some,
            vec![
                retain("2028-01-01T00:00:00Z"),
                held("LIT-2"),
                Decision::Erase
            ]
        );
    }

    #[test]
    fn configuration_changes_period_and_basis() {
        let config = json!({"order_period": "P6M", "order_basis": "Consumer law: returns window"});
        let got = run(config, vec![], vec![order("2025-03-01T00:00:00Z")]).unwrap();
        assert_eq!(
            got,
            vec![Decision::Retain {
                until: "2025-09-01T00:00:00Z".parse().unwrap(),
                basis: "Consumer law: returns window".into()
            }]
        );
    }

    #[test]
    fn bad_configuration_is_refused_even_without_records() {
        for bad in [
            json!({"order_period": "3 years"}),
            json!({"order_period": 3}),
            json!({"order_basis": "  "}),
            json!({"order_periods": "P3Y"}),
            json!(["P3Y"]),
        ] {
            let err = run(bad.clone(), vec![], vec![]).expect_err(&bad.to_string());
            assert!(err.starts_with("invalid config"), "{bad}: {err}");
        }
        assert_eq!(run(json!({}), vec![], vec![]), Ok(vec![]));
    }

    #[test]
    fn answers_in_the_wire_format_the_host_accepts() {
        // The same path the compiled module takes: JSON in, JSON out, read by the host's
        // strict decoder.
        let input = serde_json::to_vec(&json!({
            "abi": 1, "slot": "retention", "now": NOW, "config": {}, "request": {}, "holds": [],
            "records": [
                {"table": "orders", "category": "order", "attrs": {"placed_at": "2024-01-15T00:00:00Z"}},
                {"table": "contacts", "category": "contact", "group": true}
            ]
        }))
        .unwrap();
        let out = erasure_rules_sdk::run_json(&input, evaluate);
        assert_eq!(
            erasure_rules_sdk::decode_output(&out, 2).unwrap(),
            vec![retain("2027-01-15T00:00:00Z"), Decision::Erase]
        );
    }
}
