//! Rule module `retention`: statutory retention periods per data category.
//!
//! Configuration (the installation's `config`):
//!
//! ```json
//! {"regime": "eu-gdpr", "default": {"action": "erase"},
//!  "categories": {
//!    "invoice": {"action": "retain", "period": "P7Y", "from": "issued_at", "basis": "Tax law"},
//!    "audit":   {"action": "anonymize", "period": "P12M", "from": "at", "basis": "Security"}}}
//! ```
//!
//! For each record the rule of its category applies, else `default`, else
//! erase. A period runs from the record attribute named by `from` or, when
//! that is missing or not an RFC 3339 date (group records have no
//! attributes), from `now`: counting from now can only keep data longer,
//! never erase it too early. A period that has already ended means erase.
//!
//! The whole configuration is checked on every call, even with no records,
//! so a broken one is refused when the module is installed (the host's smoke
//! test), not in the middle of an erasure.

use std::collections::BTreeMap;

use erasure_rules_sdk::{AbiError, Decision, EvalInput, Period, Record, Timestamp, Until};
use serde::Deserialize;

pub mod fast;

erasure_rules_sdk::export_rules!(evaluate, fast::evaluate_json);

/// The module's rule function (exported through the SDK).
pub fn evaluate(input: &EvalInput) -> Result<Vec<Decision>, String> {
    let config = Config::parse(&input.config)?;
    let now = input
        .now_timestamp()
        .map_err(|e| format!("input field \"now\": {e}"))?;
    input
        .records
        .iter()
        .map(|record| config.decide(record, now))
        .collect()
}

/// Parsed and validated configuration.
#[derive(Debug)]
pub struct Config {
    default: Rule,
    categories: BTreeMap<String, Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    regime: Option<String>,
    // Human-readable title and counsel's note of a shipped schedule; not used by the rules.
    #[serde(default)]
    #[allow(dead_code)]
    title: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    // Rules stay JSON until parsed one by one, so errors can name the category.
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    categories: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    action: Action,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    basis: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Erase,
    Retain,
    Anonymize,
}

#[derive(Debug, PartialEq)]
enum Rule {
    Erase,
    Retain {
        period: Period,
        from: Option<String>,
        basis: String,
    },
    Anonymize {
        period: Option<Period>,
        from: Option<String>,
        basis: Option<String>,
    },
}

impl Config {
    /// Parses and checks the configuration; `null` means "erase everything".
    pub fn parse(value: &serde_json::Value) -> Result<Config, String> {
        if value.is_null() {
            return Ok(Config {
                default: Rule::Erase,
                categories: BTreeMap::new(),
            });
        }
        // serde would also read a struct from an array; only objects are configs.
        if !value.is_object() {
            return Err("invalid retention config: expected a JSON object".into());
        }
        let raw =
            RawConfig::deserialize(value).map_err(|e| format!("invalid retention config: {e}"))?;
        // regime only labels the configuration; accepted as any string.
        let _ = raw.regime;
        let default = match raw.default {
            Some(rule) => Rule::from_json(&rule)
                .map_err(|e| format!("invalid retention config, default rule: {e}"))?,
            None => Rule::Erase,
        };
        let categories = raw
            .categories
            .into_iter()
            .map(|(name, rule)| {
                Rule::from_json(&rule)
                    .map(|rule| (name.clone(), rule))
                    .map_err(|e| format!("invalid retention config, category {name:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Config {
            default,
            categories,
        })
    }

    /// The rule for a category: its own, else the default.
    fn rule(&self, category: &str) -> &Rule {
        self.categories.get(category).unwrap_or(&self.default)
    }

    fn decide(&self, record: &Record, now: Timestamp) -> Result<Decision, String> {
        let rule = self.rule(&record.category);
        let start = |attr: &str| {
            record
                .attrs
                .get(attr)
                .and_then(|v| v.as_str())
                .and_then(|s| Timestamp::parse_rfc3339(s).ok())
        };
        let fail = |e: AbiError| format!("table {:?}: retention end: {e}", record.table);
        let outcome = rule.outcome(start, now).map_err(fail)?;
        Ok(match (outcome, rule) {
            (Outcome::Erase, _) => Decision::Erase,
            (Outcome::Retain(until), Rule::Retain { basis, .. }) => Decision::Retain {
                until: Until::from_timestamp(until).map_err(fail)?,
                basis: basis.as_str().into(),
            },
            (Outcome::Anonymize(until), Rule::Anonymize { basis, .. }) => Decision::Anonymize {
                until: until.map(Until::from_timestamp).transpose().map_err(fail)?,
                basis: basis.as_deref().map(Into::into),
            },
            _ => unreachable!("an outcome comes from its own rule"),
        })
    }
}

/// A decision without its texts (they come from the rule), so the fast path allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Erase,
    /// Keep until then ([`Rule::Retain`]).
    Retain(Timestamp),
    /// Anonymise, kept until then or indefinitely ([`Rule::Anonymize`]).
    Anonymize(Option<Timestamp>),
}

impl Rule {
    /// What the rule decides for a record whose attribute `attr`, as a date, is `start(attr)`.
    /// The period runs from that date, or from `now` when there is none.
    fn outcome(
        &self,
        start: impl FnOnce(&str) -> Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Outcome, AbiError> {
        let until =
            |period: &Period, from: &Option<String>| -> Result<Option<Timestamp>, AbiError> {
                let start = from.as_deref().and_then(start).unwrap_or(now);
                let until = start.add_period(period)?;
                // Period already over: nothing left to keep.
                Ok((until > now).then_some(until))
            };
        Ok(match self {
            Rule::Erase => Outcome::Erase,
            Rule::Retain { period, from, .. } => match until(period, from)? {
                Some(until) => Outcome::Retain(until),
                None => Outcome::Erase,
            },
            Rule::Anonymize { period: None, .. } => Outcome::Anonymize(None),
            Rule::Anonymize {
                period: Some(period),
                from,
                ..
            } => match until(period, from)? {
                Some(until) => Outcome::Anonymize(Some(until)),
                None => Outcome::Erase,
            },
        })
    }
}

impl Rule {
    fn from_json(value: &serde_json::Value) -> Result<Rule, String> {
        if !value.is_object() {
            return Err("a rule must be a JSON object".into());
        }
        Rule::from_raw(RawRule::deserialize(value).map_err(|e| e.to_string())?)
    }

    /// A rule from its fields, checked.
    fn from_raw(raw: RawRule) -> Result<Rule, String> {
        let period = raw
            .period
            .as_deref()
            .map(Period::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        let basis = raw.basis.filter(|b| !b.trim().is_empty());
        match raw.action {
            Action::Erase => {
                if period.is_some() || raw.from.is_some() {
                    return Err("action \"erase\" takes no period or from".into());
                }
                Ok(Rule::Erase)
            }
            Action::Retain => Ok(Rule::Retain {
                period: period.ok_or("action \"retain\" needs a period")?,
                from: raw.from,
                basis: basis.ok_or("action \"retain\" needs a basis (the law that requires it)")?,
            }),
            Action::Anonymize => {
                if period.is_none() && raw.from.is_some() {
                    return Err("\"from\" without a period".into());
                }
                Ok(Rule::Anonymize {
                    period,
                    from: raw.from,
                    basis,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erasure_rules_sdk::ABI_VERSION;
    use serde_json::{json, Value};

    const NOW: &str = "2025-06-01T12:00:00Z";

    fn config() -> Value {
        json!({
            "regime": "eu-gdpr",
            "default": {"action": "erase"},
            "categories": {
                "invoice": {"action": "retain", "period": "P7Y", "from": "issued_at", "basis": "Tax and accounting law"},
                "audit": {"action": "anonymize", "period": "P12M", "from": "at", "basis": "Security and legal compliance"},
                "stats": {"action": "anonymize", "basis": "Aggregate statistics"}
            }
        })
    }

    fn record(category: &str, attrs: Value) -> Record {
        Record {
            table: format!("{category}s").into(),
            category: category.into(),
            attrs: attrs.as_object().cloned().unwrap_or_default(),
            group: false,
        }
    }

    fn run(config: Value, records: Vec<Record>) -> Result<Vec<Decision>, String> {
        evaluate(&EvalInput {
            abi: ABI_VERSION,
            slot: "retention".into(),
            now: NOW.into(),
            config,
            request: json!({}),
            holds: vec![],
            records,
        })
    }

    fn one(config: Value, record: Record) -> Decision {
        run(config, vec![record]).unwrap().pop().unwrap()
    }

    #[test]
    fn invoice_is_retained_seven_years_from_issue() {
        assert_eq!(
            one(
                config(),
                record("invoice", json!({"issued_at": "2024-01-15T09:30:00+01:00"}))
            ),
            Decision::Retain {
                until: "2031-01-15T08:30:00Z".parse().unwrap(),
                basis: "Tax and accounting law".into()
            }
        );
    }

    #[test]
    fn expired_retention_means_erase() {
        let old = record("invoice", json!({"issued_at": "2018-06-01T12:00:00Z"}));
        assert_eq!(one(config(), old), Decision::Erase);
        // Ending exactly now is over too.
        let edge = record("invoice", json!({"issued_at": "2018-06-01T12:00:01Z"}));
        assert!(matches!(one(config(), edge), Decision::Retain { .. }));
    }

    #[test]
    fn missing_or_unparseable_start_counts_from_now() {
        let expected = Decision::Retain {
            until: "2032-06-01T12:00:00Z".parse().unwrap(),
            basis: "Tax and accounting law".into(),
        };
        for attrs in [
            json!({}),
            json!({"issued_at": "yesterday"}),
            json!({"issued_at": 20240115}),
            json!({"issued_at": null}),
        ] {
            assert_eq!(one(config(), record("invoice", attrs)), expected);
        }
        let mut group = record("invoice", json!({}));
        group.group = true;
        assert_eq!(one(config(), group), expected);
    }

    #[test]
    fn audit_is_anonymized_until_period_end() {
        assert_eq!(
            one(
                config(),
                record("audit", json!({"at": "2025-03-10T00:00:00Z"}))
            ),
            Decision::Anonymize {
                until: Some("2026-03-10T00:00:00Z".parse().unwrap()),
                basis: Some("Security and legal compliance".into())
            }
        );
        assert_eq!(
            one(
                config(),
                record("audit", json!({"at": "2024-01-01T00:00:00Z"}))
            ),
            Decision::Erase
        );
    }

    #[test]
    fn anonymize_without_period_keeps_anonymised_row() {
        assert_eq!(
            one(config(), record("stats", json!({}))),
            Decision::Anonymize {
                until: None,
                basis: Some("Aggregate statistics".into())
            }
        );
        let bare = json!({"default": {"action": "anonymize"}});
        assert_eq!(
            one(bare, record("x", json!({}))),
            Decision::Anonymize {
                until: None,
                basis: None
            }
        );
    }

    #[test]
    fn unlisted_category_follows_default() {
        assert_eq!(one(config(), record("contact", json!({}))), Decision::Erase);
        let retain_all = json!({"default": {"action": "retain", "period": "P30D", "basis": "Complaints window"}});
        assert_eq!(
            one(retain_all, record("contact", json!({}))),
            Decision::Retain {
                until: "2025-07-01T12:00:00Z".parse().unwrap(),
                basis: "Complaints window".into()
            }
        );
    }

    #[test]
    fn no_default_or_no_config_means_erase() {
        assert_eq!(
            one(json!({"categories": {}}), record("contact", json!({}))),
            Decision::Erase
        );
        assert_eq!(
            one(json!({}), record("contact", json!({}))),
            Decision::Erase
        );
        assert_eq!(
            one(Value::Null, record("invoice", json!({}))),
            Decision::Erase
        );
    }

    #[test]
    fn decisions_follow_record_order() {
        let records = vec![
            record("contact", json!({})),
            record("invoice", json!({"issued_at": "2024-01-15T00:00:00Z"})),
            record("stats", json!({})),
        ];
        let got = run(config(), records).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Decision::Erase);
        assert!(matches!(got[1], Decision::Retain { .. }));
        assert!(matches!(got[2], Decision::Anonymize { until: None, .. }));
    }

    #[test]
    fn invalid_config_is_refused_even_without_records() {
        let bad = [
            json!({"categories": {"invoice": {"action": "keep", "period": "P7Y", "basis": "x"}}}),
            json!({"categories": {"invoice": {"action": "retain", "period": "7 years", "basis": "x"}}}),
            json!({"categories": {"invoice": {"action": "retain", "basis": "x"}}}),
            json!({"categories": {"invoice": {"action": "retain", "period": "P7Y"}}}),
            json!({"categories": {"invoice": {"action": "retain", "period": "P7Y", "basis": "  "}}}),
            json!({"categories": {"invoice": {"action": "retain", "period": "P7Y", "basis": "x", "form": "a"}}}),
            json!({"categories": {"invoice": {"action": "erase", "period": "P7Y"}}}),
            json!({"categories": {"audit": {"action": "anonymize", "from": "at"}}}),
            json!({"default": {"action": "retain"}}),
            json!({"default": "erase"}),
            json!({"categorie": {}}),
            json!([]),
            json!("eu-gdpr"),
        ];
        for config in bad {
            let err = run(config.clone(), vec![]).expect_err(&config.to_string());
            assert!(err.starts_with("invalid retention config"), "{err}");
        }
        let err = run(
            json!({"categories": {"invoice": {"action": "keep"}}}),
            vec![],
        )
        .unwrap_err();
        assert!(err.contains("\"invoice\"") && err.contains("keep"), "{err}");
    }

    #[test]
    fn bad_now_is_refused() {
        let mut input = EvalInput {
            abi: ABI_VERSION,
            slot: "retention".into(),
            now: "now".into(),
            config: config(),
            request: json!({}),
            holds: vec![],
            records: vec![],
        };
        assert!(evaluate(&input).unwrap_err().contains("\"now\""));
        input.now = NOW.into();
        assert_eq!(evaluate(&input), Ok(vec![]));
    }

    #[test]
    fn end_after_year_9999_is_refused() {
        let forever = json!({"default": {"action": "retain", "period": "P9000Y", "basis": "x"}});
        assert!(run(forever, vec![record("x", json!({}))])
            .unwrap_err()
            .contains("9999"));
    }

    #[test]
    fn sdk_round_trip_produces_valid_output() {
        let input = serde_json::to_vec(&json!({
            "abi": 1, "slot": "retention", "now": NOW, "config": config(), "request": {}, "holds": [],
            "records": [{"table": "invoices", "category": "invoice", "attrs": {"issued_at": "2024-01-15T00:00:00Z"}}]
        }))
        .unwrap();
        let out = erasure_rules_sdk::run_json(&input, evaluate);
        assert_eq!(
            erasure_rules_sdk::decode_output(&out, 1).unwrap(),
            vec![Decision::Retain {
                until: "2031-01-15T00:00:00Z".parse().unwrap(),
                basis: "Tax and accounting law".into()
            }]
        );
    }

    /// The fast path answers exactly as the SDK's `run_json` with `evaluate` does, or declines.
    #[test]
    fn fast_path_answers_byte_for_byte_like_run_json() {
        let configs = [
            config(),
            json!({"default": {"action": "retain", "period": "P1Y2M3D", "basis": "quote \" tab \t § ✓"}}),
            json!({"default": {"action": "anonymize", "period": "P10D"}, "categories": {"x": {"action": "erase"}}}),
            json!({"default": {"action": "anonymize", "period": "P1Y1M", "from": "at"},
                   "categories": {"invoice": {"action": "retain", "period": "P13M", "from": "issued_at", "basis": "b"}}}),
            json!({"default": {"action": "retain", "period": "P9000Y", "basis": "x"}}),
            json!({"categories": {"invoice": {"action": "keep"}}}),
            serde_json::from_str(include_str!("../../../policies/retention/eu-gdpr.json")).unwrap(),
            serde_json::from_str(include_str!("../../../policies/retention/us-ccpa.json")).unwrap(),
            serde_json::from_str(include_str!("../../../policies/retention/in-dpdp.json")).unwrap(),
            json!({"regime": null, "title": "t\n\"x\"", "default": null, "categories": {
                "invoice": {"action": "retain", "period": "P7Y", "from": null, "basis": "b"},
                "audit": {"action": "anonymize", "period": null, "from": null, "basis": null}}}),
            json!({"default": {"action": "erase", "basis": "unused"}}),
            json!({"categories": null}),
            json!({"default": {"action": "retain", "period": "P1Y", "basis": "x", "extra": 1}}),
            json!({"default": {"action": "retain", "period": "P1Y", "basis": 3}}),
            json!({"regime": 1}),
            Value::Null,
        ];
        let attrs = [
            json!({"issued_at": "2024-01-15T09:30:00.388446+00:00"}),
            json!({"issued_at": "2018-06-01T12:00:00Z", "at": "2025-03-10T00:00:00-05:00"}),
            json!({"at": "2024-02-29T23:59:60Z", "issued_at": null}),
            json!({"issued_at": "yesterday", "other": [1, {"a": 2.5}]}),
            json!({}),
            json!({"issued_at": "2024-02-29T10:00:00Z", "at": "2024-03-31T23:59:59.5Z"}),
            json!({"issued_at": "0000-02-29T00:00:00-00:00", "at": "2025-06-01T12:00:00Z"}),
            json!({"issued_at": "9995-01-01T00:00:00Z", "at": "2024-06-01T12:00:01+00:00"}),
            json!({"issued_at": "2024-13-01T00:00:00Z", "at": "2024-06-31T00:00:00Z"}),
            json!({"issued_at": "2024-01-15t09:30:00z", "at": "2024-01-15 09:30:00Z"}),
            json!({"issued_at": "2024-01-15T09:30:00.Z", "at": "2024-01-15T24:00:00Z"}),
        ];
        let categories = ["invoice", "audit", "stats", "x", "contact", "unïcode"];
        let mut fast_answers = 0;
        for (c, config) in configs.iter().enumerate() {
            // Records of one category in runs of 1, 3 and 7 (the fast path writes runs of
            // like answers together).
            for (n, run) in (0..12usize).flat_map(|n| [(n, 1), (n * 2, 3), (n * 3, 7)]) {
                let records: Vec<Value> = (0..n)
                    .map(|i| {
                        json!({"table": format!("t{i}"), "category": categories[(i / run + c) % categories.len()],
                               "attrs": attrs[(i * 7 + n) % attrs.len()], "group": i % 3 == 0})
                    })
                    .collect();
                for now in [NOW, "2025-06-01T12:00:00+02:00", "now"] {
                    // Written as the host writes it (struct order, records last).
                    let value = json!({
                        "abi": 1, "slot": "retention", "now": now, "config": config,
                        "request": {"subject_kind": "contact", "org_id": null, "source": "api", "request_id": 3},
                        "holds": [{"id": 1, "case": "C", "categories": ["invoice"]}],
                        "records": records,
                    });
                    let typed: EvalInput = serde_json::from_value(value).unwrap();
                    let input = serde_json::to_vec(&typed).unwrap();
                    let slow = erasure_rules_sdk::run_json(&input, evaluate);
                    let mut fast = Vec::new();
                    if fast::evaluate_json(&input, &mut fast) {
                        fast_answers += 1;
                        assert_eq!(
                            String::from_utf8(fast).unwrap(),
                            String::from_utf8(slow).unwrap()
                        );
                    } else {
                        // Declined only for what the slow path refuses.
                        let answer: Value = serde_json::from_slice(&slow).unwrap();
                        assert!(answer.get("error").is_some(), "{answer}");
                    }
                }
            }
        }
        assert!(fast_answers > 100, "{fast_answers}");
    }
}
