//! The module's fast path: the same decisions as [`evaluate`](crate::evaluate) through the
//! SDK's `run_json`, read from the input without copying it and written straight to the
//! output. It declines (returns `false`) whenever anything is unusual: input the SDK's
//! borrowed view does not handle, a configuration or `now` that does not parse, a record
//! whose retention end fails; the SDK then runs [`evaluate`](crate::evaluate), which gives
//! the answer or the refusal with its message.

use erasure_rules_sdk::erasure_abi::json::{bytes_eq, write_str};
use std::borrow::Cow;
use std::collections::BTreeMap;

use erasure_rules_sdk::view::{literal, object, read_str, skip_ws, InputView};
use erasure_rules_sdk::{Timestamp, ABI_VERSION};

use crate::{Action, Config, Outcome, RawRule, Rule};

/// `fast(input, output)` for `export_rules!`.
pub fn evaluate_json(input: &[u8], out: &mut Vec<u8>) -> bool {
    run(input, out).is_some()
}

/// One rule's answers as JSON, exactly as `encode_output` writes them: a dated answer with
/// a placeholder where its date goes (at `date_at`), and the undated answer.
struct Answers {
    dated: Vec<u8>,
    date_at: usize,
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
        let mut dated = head.clone();
        dated.extend_from_slice(b",\"until\":\"");
        let date_at = dated.len();
        dated.extend_from_slice(&[b'0'; 20]);
        dated.push(b'"');
        dated.extend_from_slice(&basis_json);
        dated.push(b'}');
        let mut undated = head;
        undated.extend_from_slice(&basis_json);
        undated.push(b'}');
        Answers {
            dated,
            date_at,
            undated,
        }
    }
}

fn run(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let view = InputView::parse(input)?;
    if view.abi != ABI_VERSION {
        return None;
    }
    let config = parse_config(view.config.as_bytes())?;
    let now = Timestamp::parse_rfc3339(&view.now).ok()?;

    // Rule 0 is the default, rule i + 1 the i-th category's.
    let rules: Vec<&Rule> = std::iter::once(&config.default)
        .chain(config.categories.values())
        .collect();
    let names: Vec<&str> = config.categories.keys().map(String::as_str).collect();
    let rule_index = |category: &str| {
        names
            .iter()
            .position(|name| bytes_eq(name.as_bytes(), category.as_bytes()))
            .map_or(0, |i| i + 1)
    };

    // Pass 1: decide every record, keeping only what the answer needs.
    let mut outcomes: Vec<(usize, Outcome)> = Vec::with_capacity(view.records().len());
    // Records mostly come in runs of one category.
    let mut last: Option<(&str, usize)> = None;
    for record in view.records() {
        let index = match last {
            Some((category, index))
                if bytes_eq(category.as_bytes(), record.category.as_bytes()) =>
            {
                index
            }
            _ => {
                let index = rule_index(&record.category);
                last = Some((&record.category, index));
                index
            }
        };
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
            Outcome::Retain(_) | Outcome::Anonymize(Some(_)) => a.dated.len(),
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
                // One copy of the whole answer, then its date.
                let at = out.len() + a.date_at;
                out.extend_from_slice(&a.dated);
                out[at..at + 20].copy_from_slice(&until.rfc3339_bytes()?);
            }
            Outcome::Anonymize(None) => out.extend_from_slice(&a.undated),
        }
    }
    out.extend_from_slice(b"]}");
    Some(())
}

/// [`Config::parse`] of the configuration's JSON text, read directly: the usual, valid
/// configuration only. Anything else (a key repeated or unknown, a value of another
/// type, an invalid rule) is `None`, and the slow path reports it.
fn parse_config(bytes: &[u8]) -> Option<Config> {
    if literal(bytes, 0, b"null").is_some_and(|end| end == bytes.len()) {
        return Some(Config {
            default: Rule::Erase,
            categories: BTreeMap::new(),
        });
    }
    let mut seen = [false; 5];
    let mut default = Rule::Erase;
    let mut categories = BTreeMap::new();
    let end = object(bytes, skip_ws(bytes, 0), |key, at| {
        let (slot, end) = match &*key {
            "regime" | "title" | "note" => {
                // Labels: a string or null, not used.
                let slot = ["regime", "title", "note"].iter().position(|k| *k == key)?;
                (slot, optional_str(bytes, at)?.1)
            }
            "default" => {
                let (rule, end) = match literal(bytes, at, b"null") {
                    Some(end) => (Rule::Erase, end),
                    None => parse_rule(bytes, at)?,
                };
                default = rule;
                (3, end)
            }
            "categories" => {
                let end = object(bytes, at, |name, at| {
                    let (rule, end) = parse_rule(bytes, at)?;
                    // A repeated category: serde_json would keep the last; leave it to it.
                    categories
                        .insert(name.into_owned(), rule)
                        .is_none()
                        .then_some(end)
                })?;
                (4, end)
            }
            _ => return None,
        };
        (!std::mem::replace(&mut seen[slot], true)).then_some(end)
    })?;
    (skip_ws(bytes, end) == bytes.len()).then_some(Config {
        default,
        categories,
    })
}

/// A string or null at `at`, and the index after it.
fn optional_str(bytes: &[u8], at: usize) -> Option<(Option<Cow<'_, str>>, usize)> {
    match literal(bytes, at, b"null") {
        Some(end) => Some((None, end)),
        None => read_str(bytes, at).map(|(text, end)| (Some(text), end)),
    }
}

/// One rule object at `at`, checked as [`Rule::from_json`] checks it.
fn parse_rule(bytes: &[u8], at: usize) -> Option<(Rule, usize)> {
    let mut action = None;
    let mut fields: [Option<Option<String>>; 3] = [None, None, None];
    let end = object(bytes, at, |key, at| {
        if key == "action" {
            let (text, end) = read_str(bytes, at)?;
            let parsed = match &*text {
                "erase" => Action::Erase,
                "retain" => Action::Retain,
                "anonymize" => Action::Anonymize,
                _ => return None,
            };
            return action.replace(parsed).is_none().then_some(end);
        }
        let slot = ["period", "from", "basis"].iter().position(|k| *k == key)?;
        let (value, end) = optional_str(bytes, at)?;
        fields[slot]
            .replace(value.map(Cow::into_owned))
            .is_none()
            .then_some(end)
    })?;
    let [period, from, basis] = fields;
    let raw = RawRule {
        action: action?,
        period: period.flatten(),
        from: from.flatten(),
        basis: basis.flatten(),
    };
    Some((Rule::from_raw(raw).ok()?, end))
}
