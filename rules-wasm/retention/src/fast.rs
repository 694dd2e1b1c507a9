//! The module's fast path: the same decisions as [`evaluate`](crate::evaluate) through the
//! SDK's `run_json`, read from the input without copying it and written straight to the
//! output. It declines (returns `false`) whenever anything is unusual: input the SDK's
//! borrowed view does not handle, a configuration or `now` that does not parse, a record
//! whose retention end fails; the SDK then runs [`evaluate`](crate::evaluate), which gives
//! the answer or the refusal with its message.

use erasure_rules_sdk::erasure_abi::json::write_str;
use erasure_rules_sdk::view::InputView;
use erasure_rules_sdk::{Timestamp, ABI_VERSION};

use crate::{Config, Outcome, Rule};

/// `fast(input, output)` for `export_rules!`.
pub fn evaluate_json(input: &[u8], out: &mut Vec<u8>) -> bool {
    run(input, out).is_some()
}

/// One rule's answers as JSON, exactly as `encode_output` writes them: the pieces before
/// and after the date of a dated answer, and the whole undated answer.
struct Answers {
    dated_head: Vec<u8>,
    dated_tail: Vec<u8>,
    undated: Vec<u8>,
}

impl Answers {
    fn new(rule: &Rule) -> Answers {
        let (action, basis) = match rule {
            Rule::Erase => ("erase", None),
            Rule::Retain { basis, .. } => ("retain", Some(basis.as_str())),
            Rule::Anonymize { basis, .. } => ("anonymize", basis.as_deref()),
        };
        let mut basis_json = Vec::new();
        if let Some(basis) = basis {
            basis_json.extend_from_slice(b",\"basis\":");
            write_str(&mut basis_json, basis);
        }
        let head = format!("{{\"action\":\"{action}\"").into_bytes();
        let mut dated_head = head.clone();
        dated_head.extend_from_slice(b",\"until\":\"");
        let mut dated_tail = b"\"".to_vec();
        dated_tail.extend_from_slice(&basis_json);
        dated_tail.push(b'}');
        let mut undated = head;
        undated.extend_from_slice(&basis_json);
        undated.push(b'}');
        Answers {
            dated_head,
            dated_tail,
            undated,
        }
    }
}

fn run(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let view = InputView::parse(input)?;
    if view.abi != ABI_VERSION {
        return None;
    }
    let config_value: serde_json::Value = serde_json::from_str(view.config).ok()?;
    let config = Config::parse(&config_value).ok()?;
    let now = Timestamp::parse_rfc3339(&view.now).ok()?;

    // Rule 0 is the default, rule i + 1 the i-th category's.
    let rules: Vec<&Rule> = std::iter::once(&config.default)
        .chain(config.categories.values())
        .collect();
    let rule_index = |category: &str| {
        config
            .categories
            .keys()
            .position(|name| name == category)
            .map_or(0, |i| i + 1)
    };

    // Pass 1: decide every record, keeping only what the answer needs.
    let mut outcomes: Vec<(usize, Outcome)> = Vec::with_capacity(view.records().len());
    for record in view.records() {
        let index = rule_index(&record.category);
        let start = |attr: &str| {
            record
                .attr_str(attr)
                .and_then(|s| Timestamp::parse_rfc3339(&s).ok())
        };
        outcomes.push((index, rules[index].outcome(start, now).ok()?));
    }

    // Pass 2: the answer, into a buffer of exactly the right size.
    let answers: Vec<Answers> = rules.iter().map(|rule| Answers::new(rule)).collect();
    let erase = Answers::new(&Rule::Erase).undated;
    let answer_len = |(index, outcome): &(usize, Outcome)| {
        let a = &answers[*index];
        match outcome {
            Outcome::Erase => erase.len(),
            Outcome::Retain(_) | Outcome::Anonymize(Some(_)) => {
                a.dated_head.len() + 20 + a.dated_tail.len()
            }
            Outcome::Anonymize(None) => a.undated.len(),
        }
    };
    let size =
        b"{\"decisions\":[]}".len() + outcomes.iter().map(|o| 1 + answer_len(o)).sum::<usize>();
    out.clear();
    out.reserve_exact(size);
    out.extend_from_slice(b"{\"decisions\":[");
    for (i, (index, outcome)) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let a = &answers[*index];
        match outcome {
            Outcome::Erase => out.extend_from_slice(&erase),
            Outcome::Retain(until) | Outcome::Anonymize(Some(until)) => {
                out.extend_from_slice(&a.dated_head);
                out.extend_from_slice(&until.rfc3339_bytes()?);
                out.extend_from_slice(&a.dated_tail);
            }
            Outcome::Anonymize(None) => out.extend_from_slice(&a.undated),
        }
    }
    out.extend_from_slice(b"]}");
    Some(())
}
