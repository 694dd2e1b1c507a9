//! ABI version 1 between the pg_erasure host and its WebAssembly rule modules.
//!
//! Both sides link this crate, so the wire types cannot drift apart. The
//! contract itself is written down in `rules-wasm/ABI.md`; this crate is its
//! executable form:
//!
//! * [`EvalInput`] (with [`Hold`] and [`Record`]) is the JSON the host writes
//!   into the module's memory;
//! * [`EvalOutput`] is the JSON the module answers with, and
//!   [`decode_output`] is the host's strict reader for it;
//! * [`Decision`] is what the law requires for one record, and
//!   [`Decision::combine`] merges the answers of several rule slots;
//! * [`Timestamp`] and [`Period`] are a small UTC calendar, so guests need no
//!   date library.
//!
//! Only serde and serde_json are dependencies because every guest module
//! carries this code; for the same reason [`AbiError`] implements its traits
//! by hand instead of through thiserror.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod json;
mod time;
mod until;

pub use time::{
    civil_from_days, days_from_civil, days_in_month, format_civil, format_utc_micros, is_leap_year,
    two_digits, write_utc_micros, Period, Timestamp,
};
pub use until::Until;

/// The ABI version this crate speaks; modules export it as `erasure_abi_version`.
pub const ABI_VERSION: i32 = 1;

/// Longest `basis`, `case` or refusal message accepted from a module, in bytes.
/// Legal citations are short; anything longer is a broken or hostile module.
pub const MAX_TEXT_LEN: usize = 4096;

/// Longest timestamp text accepted from a module, in bytes.
pub const MAX_TIMESTAMP_LEN: usize = 64;

/// The input of one `evaluate` call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalInput {
    /// Always [`ABI_VERSION`].
    pub abi: i32,
    /// Name of the rule slot this module is installed in (e.g. `retention`).
    pub slot: String,
    /// The host's transaction time, RFC 3339 UTC. Modules must not read a clock.
    pub now: String,
    /// The configuration stored with the module installation.
    pub config: Value,
    /// The erasure request: `subject_kind`, `org_id`, `source`, `request_id`.
    pub request: Value,
    /// Active legal holds that apply to this request (already filtered by the host).
    pub holds: Vec<Hold>,
    /// The data to decide about; one decision per record, in the same order.
    pub records: Vec<Record>,
}

impl EvalInput {
    /// [`EvalInput::now`] parsed.
    pub fn now_timestamp(&self) -> Result<Timestamp, AbiError> {
        Timestamp::parse_rfc3339(&self.now)
    }
}

/// An active legal hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: i64,
    /// The case reference a compliance engineer recognises.
    pub case: String,
    /// Data categories the hold covers; `None` covers everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// When the hold lapses (RFC 3339); `None` means until released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One piece of the subject's data.
///
/// `table` and `category` are shared: the records of one batch are rows of one table, and
/// a clone of either costs a reference count, not an allocation per row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Table the row lives in.
    pub table: Arc<str>,
    /// Data-map category of that table (e.g. `invoice`, `audit`).
    pub category: Arc<str>,
    /// Column values the data map exposes to rules (e.g. `issued_at`).
    #[serde(default)]
    pub attrs: Map<String, Value>,
    /// `true`: the record stands for all of the subject's rows in `table`,
    /// and `attrs` is empty.
    #[serde(default)]
    pub group: bool,
}

impl Record {
    /// The rule-evaluation workload of `make bench` and its diagnostics: `n` invoices issued
    /// over the ten years before `now` (Unix seconds), newest first, so that about 30% are past
    /// a 7-year retention period and the rest are kept. Their dates have microseconds, as the
    /// reference CRM's generated ones do, written as the extension writes a `timestamptz`
    /// attribute ([`format_utc_micros`](crate::format_utc_micros)).
    pub fn invoice_batch(now: i64, n: usize) -> Vec<Record> {
        // Shared by every record, as the extension shares them within a batch.
        let (table, category): (Arc<str>, Arc<str>) = ("invoices".into(), "invoice".into());
        Record::invoice_issued_micros(now, n)
            .into_iter()
            .map(|issued| {
                let mut attrs = Map::new();
                attrs.insert("issued_at".into(), Value::String(format_utc_micros(issued)));
                Record {
                    table: Arc::clone(&table),
                    category: Arc::clone(&category),
                    attrs,
                    group: false,
                }
            })
            .collect()
    }

    /// When [`invoice_batch`](Self::invoice_batch)'s invoices were issued, in Unix
    /// microseconds: what the extension reads from their rows.
    pub fn invoice_issued_micros(now: i64, n: usize) -> Vec<i64> {
        let span = 3652 * 86_400i64;
        (0..n as i64)
            .map(|i| {
                let issued = now - span * i / n as i64 - 3600;
                let micros = (i * 104_729 + 7) % 1_000_000;
                issued * 1_000_000 + micros
            })
            .collect()
    }
}

/// What must happen to one record.
///
/// Serialised with an `"action"` tag: `{"action":"retain","until":...,"basis":...}`.
///
/// A `basis` is shared ([`Arc<str>`]): a module gives thousands of records the same legal
/// text, and the host's reader hands each of them the same copy instead of allocating one
/// per record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", try_from = "WireDecision")]
pub enum Decision {
    /// Delete now.
    Erase,
    /// Anonymise now. With `until`, the anonymised row is kept until then and
    /// purged after; without it, it is kept.
    Anonymize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Until>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        basis: Option<Arc<str>>,
    },
    /// Keep unchanged until `until` because of `basis`, then erase.
    Retain { until: Until, basis: Arc<str> },
    /// Keep unchanged while legal hold `case` lasts.
    Hold { case: String },
}

/// Reading twin of [`Decision`]. serde ignores unknown fields of a unit
/// variant even under `deny_unknown_fields`, so `Erase` is a struct variant
/// here: a typo such as `{"action":"erase","untill":...}` must not pass.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum WireDecision {
    Erase {},
    Anonymize {
        #[serde(default)]
        until: Option<String>,
        #[serde(default)]
        basis: Option<Arc<str>>,
    },
    Retain {
        until: String,
        basis: Arc<str>,
    },
    Hold {
        case: String,
    },
}

/// Reads the dates (made canonical) and checks the texts: a decision exists only valid.
impl TryFrom<WireDecision> for Decision {
    type Error = AbiError;

    fn try_from(wire: WireDecision) -> Result<Self, AbiError> {
        let decision = match wire {
            WireDecision::Erase {} => Decision::Erase,
            WireDecision::Anonymize { until, basis } => Decision::Anonymize {
                until: until.as_deref().map(Until::parse).transpose()?,
                basis,
            },
            WireDecision::Retain { until, basis } => Decision::Retain {
                until: Until::parse(&until)?,
                basis,
            },
            WireDecision::Hold { case } => Decision::Hold { case },
        };
        decision.validate()?;
        Ok(decision)
    }
}

impl Decision {
    /// How protective the decision is of the data: erase 0, anonymize 1,
    /// retain 2, hold 3.
    pub fn precedence(&self) -> u8 {
        match self {
            Decision::Erase => 0,
            Decision::Anonymize { .. } => 1,
            Decision::Retain { .. } => 2,
            Decision::Hold { .. } => 3,
        }
    }

    /// Merges the decisions of two rule slots for the same record: the most
    /// protective one wins, so no slot can cause data another slot must keep
    /// to be lost.
    ///
    /// * Higher [`precedence`](Self::precedence) wins outright:
    ///   hold > retain > anonymize > erase. Anonymize + retain gives the
    ///   retain unchanged (the row is kept as it is, not anonymised).
    /// * Two retains: the later `until` wins.
    /// * Two anonymizes: the one keeping the anonymised row longer wins, and
    ///   no `until` (kept) beats any `until`.
    /// * Otherwise (two erases, two holds, equal dates) `a` is kept, so
    ///   folding slots in a fixed order gives a stable result.
    ///
    /// Dates are compared as instants.
    pub fn combine(a: Decision, b: Decision) -> Decision {
        use std::cmp::Ordering;
        match a.precedence().cmp(&b.precedence()) {
            Ordering::Greater => a,
            Ordering::Less => b,
            Ordering::Equal => match (&a, &b) {
                (Decision::Retain { until: ua, .. }, Decision::Retain { until: ub, .. }) => {
                    if ub > ua {
                        b
                    } else {
                        a
                    }
                }
                (Decision::Anonymize { until: ua, .. }, Decision::Anonymize { until: ub, .. }) => {
                    match (ua, ub) {
                        (None, _) => a,
                        (Some(_), None) => b,
                        (Some(ua), Some(ub)) => {
                            if ub > ua {
                                b
                            } else {
                                a
                            }
                        }
                    }
                }
                _ => a,
            },
        }
    }

    /// Checks the texts of one decision from a module (its dates are valid by their type).
    fn validate(&self) -> Result<(), AbiError> {
        match self {
            Decision::Erase => Ok(()),
            Decision::Anonymize { basis, .. } => {
                if let Some(basis) = basis {
                    check_text("basis", basis)?;
                }
                Ok(())
            }
            Decision::Retain { basis, .. } => {
                check_text("basis", basis)?;
                // A retention nobody can justify is not a legal decision.
                if basis.trim().is_empty() {
                    return Err(AbiError::EmptyField("basis"));
                }
                Ok(())
            }
            Decision::Hold { case } => {
                check_text("case", case)?;
                if case.trim().is_empty() {
                    return Err(AbiError::EmptyField("case"));
                }
                Ok(())
            }
        }
    }
}

/// [`Decision::combine`] as a free function, for folding slot answers:
/// `answers.into_iter().reduce(combine)`.
pub fn combine(a: Decision, b: Decision) -> Decision {
    Decision::combine(a, b)
}

fn check_text(field: &'static str, text: &str) -> Result<(), AbiError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(AbiError::FieldTooLong {
            field,
            len: text.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

/// The module's answer: `{"decisions":[...]}` or `{"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalOutput {
    /// One decision per input record, in input order.
    Decisions(Vec<Decision>),
    /// The module refuses the input (e.g. its configuration is invalid).
    Error(String),
}

/// Everything that can be wrong with a module's output (or a date/period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbiError {
    /// The output bytes are not UTF-8.
    NotUtf8,
    /// The output is not JSON of the shape `{"decisions":[...]}` / `{"error":"..."}`.
    Malformed(String),
    /// The module answered `{"error": ...}`.
    ModuleRefused(String),
    /// The module did not return exactly one decision per record.
    WrongDecisionCount { expected: usize, got: usize },
    /// A date is not RFC 3339 (the offending text, shortened).
    BadTimestamp(String),
    /// A period is not ISO 8601 `PnYnMnD` (the offending text, shortened).
    BadPeriod(String),
    /// Date arithmetic went past year 9999.
    TimestampOutOfRange,
    /// A text field is longer than the ABI allows.
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A field that must say something is empty.
    EmptyField(&'static str),
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbiError::NotUtf8 => f.write_str("module output is not valid UTF-8"),
            AbiError::Malformed(e) => {
                write!(
                    f,
                    "module output is not {{\"decisions\": [...]}} or {{\"error\": \"...\"}}: {e}"
                )
            }
            AbiError::ModuleRefused(msg) => write!(f, "rule module refused the request: {msg}"),
            AbiError::WrongDecisionCount { expected, got } => {
                write!(
                    f,
                    "rule module returned {got} decisions for {expected} records"
                )
            }
            AbiError::BadTimestamp(s) => write!(f, "not an RFC 3339 timestamp: {s:?}"),
            AbiError::BadPeriod(s) => {
                write!(f, "not an ISO 8601 period such as P7Y or P30D: {s:?}")
            }
            AbiError::TimestampOutOfRange => f.write_str("date lies after the year 9999"),
            AbiError::FieldTooLong { field, len, max } => {
                write!(
                    f,
                    "field {field:?} is {len} bytes long, more than the {max} allowed"
                )
            }
            AbiError::EmptyField(field) => write!(f, "field {field:?} must not be empty"),
        }
    }
}

impl std::error::Error for AbiError {}

/// Serialises a module's answer.
pub fn encode_output(output: &EvalOutput) -> Vec<u8> {
    // Our own types always serialise; the fallback is still a valid refusal.
    serde_json::to_vec(output)
        .unwrap_or_else(|_| br#"{"error":"output could not be serialised"}"#.to_vec())
}

/// Reads a module's answer strictly: UTF-8, the exact JSON shape, one
/// decision per record, RFC 3339 dates (rewritten to canonical UTC), bounded
/// and non-empty texts. `{"error": ...}` becomes [`AbiError::ModuleRefused`].
pub fn decode_output(bytes: &[u8], expected: usize) -> Result<Vec<Decision>, AbiError> {
    // The usual answer, read directly; anything unusual (refusals, escapes this reader does
    // not decode, nulls, duplicate or unknown fields, any error) goes through serde_json below,
    // which accepts or rejects it and names the fault.
    if let Some(decisions) = fast_decode::decisions(bytes, expected) {
        return Ok(decisions);
    }
    decode_output_serde(bytes, expected)
}

/// [`decode_output`] through serde_json alone: the reference the fast reader must agree with.
#[doc(hidden)]
pub fn decode_output_serde(bytes: &[u8], expected: usize) -> Result<Vec<Decision>, AbiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AbiError::NotUtf8)?;
    // The shape first, with the fields as they were written; then the count; then each
    // decision's values, so a bad date is reported as one and not as malformed JSON.
    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum WireOutput {
        Decisions(Vec<WireDecision>),
        Error(String),
    }
    let output: WireOutput =
        serde_json::from_str(text).map_err(|e| AbiError::Malformed(e.to_string()))?;
    let decisions = match output {
        WireOutput::Decisions(d) => d,
        WireOutput::Error(msg) => {
            return Err(AbiError::ModuleRefused(
                truncate_utf8(&msg, MAX_TEXT_LEN).to_string(),
            ))
        }
    };
    if decisions.len() != expected {
        return Err(AbiError::WrongDecisionCount {
            expected,
            got: decisions.len(),
        });
    }
    decisions.into_iter().map(Decision::try_from).collect()
}

/// A direct reader for well-formed `{"decisions":[...]}` answers.
mod fast_decode {
    use std::sync::Arc;

    use crate::json::{read_str, skip_ws};
    use crate::{Decision, Until};

    /// The decisions, validated, or `None` when serde_json has to look at the output.
    pub(crate) fn decisions(bytes: &[u8], expected: usize) -> Option<Vec<Decision>> {
        let mut i = skip_ws(bytes, 0);
        i = literal(bytes, i, b"{")?;
        let (key, next) = read_str(bytes, skip_ws(bytes, i))?;
        if key != "decisions" {
            return None;
        }
        i = literal(bytes, skip_ws(bytes, next), b":")?;
        i = literal(bytes, skip_ws(bytes, i), b"[")?;
        // Modules give every record the same few texts; the last one read is reused
        // when the next occurrence has the same bytes.
        let mut memo = Memo::default();
        let mut out = Vec::with_capacity(expected);
        i = skip_ws(bytes, i);
        if bytes.get(i) == Some(&b']') {
            i += 1;
        } else {
            loop {
                if out.len() == expected {
                    return None;
                }
                let (decision, next) = decision(bytes, skip_ws(bytes, i), &mut memo)?;
                decision.validate().ok()?;
                out.push(decision);
                i = skip_ws(bytes, next);
                match bytes.get(i) {
                    Some(b',') => i += 1,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        i = literal(bytes, skip_ws(bytes, i), b"}")?;
        (skip_ws(bytes, i) == bytes.len() && out.len() == expected).then_some(out)
    }

    #[inline(always)]
    fn literal(bytes: &[u8], at: usize, lit: &[u8]) -> Option<usize> {
        crate::json::literal_at(bytes, at, lit)
    }

    #[derive(Default)]
    struct Memo {
        /// The raw bytes of the last string value read (quotes included), kept here rather
        /// than as a range of the output so comparing reads only one far-away copy.
        raw: Vec<u8>,
        /// Its text, handed out shared: a hit costs a reference count, not an allocation.
        text: Option<Arc<str>>,
    }

    impl Memo {
        fn string(&mut self, bytes: &[u8], at: usize) -> Option<(Arc<str>, usize)> {
            let len = self.raw.len();
            if let Some(text) = &self.text {
                if bytes.get(at..at + len) == Some(&self.raw[..]) {
                    // The same bytes from an opening quote end at the same closing quote.
                    return Some((Arc::clone(text), at + len));
                }
            }
            let (text, next) = read_str(bytes, at)?;
            let text: Arc<str> = Arc::from(&*text);
            self.raw.clear();
            self.raw.extend_from_slice(&bytes[at..next]);
            self.text = Some(Arc::clone(&text));
            Some((text, next))
        }
    }

    /// A retain as `encode_output` writes it, read with fixed-position checks; `None` when
    /// it is written any other way.
    #[inline(always)]
    fn compact_retain(bytes: &[u8], at: usize, memo: &mut Memo) -> Option<(Decision, usize)> {
        const HEAD: &[u8] = b"{\"action\":\"retain\",\"until\":";
        const MID: &[u8] = b",\"basis\":";
        let i = literal(bytes, at, HEAD)?;
        let (until, i) = until(bytes, i)?;
        let i = literal(bytes, i, MID)?;
        let (basis, i) = memo.string(bytes, i)?;
        let i = literal(bytes, i, b"}")?;
        Some((Decision::Retain { until, basis }, i))
    }

    /// A date string at `at`: the canonical form straight from its bytes, any other through
    /// [`Until::parse`].
    #[inline(always)]
    fn until(bytes: &[u8], at: usize) -> Option<(Until, usize)> {
        if let Some(until) = bytes
            .get(at..at + 22)
            .filter(|quoted| quoted[0] == b'"' && quoted[21] == b'"')
            .and_then(|quoted| Until::from_canonical(&quoted[1..21]))
        {
            return Some((until, at + 22));
        }
        let (text, next) = read_str(bytes, at)?;
        Some((Until::parse(&text).ok()?, next))
    }

    /// One decision object starting at `at`, `"action"` first; the index after it.
    fn decision(bytes: &[u8], at: usize, memo: &mut Memo) -> Option<(Decision, usize)> {
        const ERASE: &[u8] = b"{\"action\":\"erase\"}";
        if let Some(next) = literal(bytes, at, ERASE) {
            return Some((Decision::Erase, next));
        }
        if let Some(found) = compact_retain(bytes, at, memo) {
            return Some(found);
        }
        let mut i = literal(bytes, at, b"{")?;
        let (key, next) = read_str(bytes, skip_ws(bytes, i))?;
        if key != "action" {
            return None;
        }
        i = literal(bytes, skip_ws(bytes, next), b":")?;
        let (action, next) = read_str(bytes, skip_ws(bytes, i))?;
        // Which fields the action takes: until, basis, case.
        let allowed: [bool; 3] = match &*action {
            "erase" => [false, false, false],
            "anonymize" | "retain" => [true, true, false],
            "hold" => [false, false, true],
            _ => return None,
        };
        let mut fields: [Option<Arc<str>>; 3] = [None, None, None];
        i = skip_ws(bytes, next);
        loop {
            match bytes.get(i)? {
                b'}' => break,
                b',' => {}
                _ => return None,
            }
            let (key, next) = read_str(bytes, skip_ws(bytes, i + 1))?;
            let slot = match &*key {
                "until" => 0,
                "basis" => 1,
                "case" => 2,
                _ => return None,
            };
            if !allowed[slot] || fields[slot].is_some() {
                return None;
            }
            i = literal(bytes, skip_ws(bytes, next), b":")?;
            let (value, next) = memo.string(bytes, skip_ws(bytes, i))?;
            fields[slot] = Some(value);
            i = skip_ws(bytes, next);
        }
        let [until, basis, case] = fields;
        // Only `basis` stays shared; a date is read into its own type, a case reference is a
        // plain string.
        let until = match until {
            Some(text) => Some(Until::parse(&text).ok()?),
            None => None,
        };
        let decision = match &*action {
            "erase" => Decision::Erase,
            "anonymize" => Decision::Anonymize { until, basis },
            "retain" => Decision::Retain {
                until: until?,
                basis: basis?,
            },
            _ => Decision::Hold {
                case: String::from(&*case?),
            },
        };
        Some((decision, i + 1))
    }
}

/// Longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_input() -> EvalInput {
        EvalInput {
            abi: ABI_VERSION,
            slot: "retention".into(),
            now: "2025-06-01T00:00:00Z".into(),
            config: json!({"regime": "eu-gdpr"}),
            request: json!({"subject_kind": "contact", "org_id": 7, "source": "api", "request_id": "r-1"}),
            holds: vec![Hold {
                id: 3,
                case: "CASE-1".into(),
                categories: Some(vec!["invoice".into()]),
                expires_at: None,
            }],
            records: vec![
                Record {
                    table: "invoices".into(),
                    category: "invoice".into(),
                    attrs: json!({"issued_at": "2024-01-15T00:00:00Z"})
                        .as_object()
                        .unwrap()
                        .clone(),
                    group: false,
                },
                Record {
                    table: "notes".into(),
                    category: "note".into(),
                    attrs: Map::new(),
                    group: true,
                },
            ],
        }
    }

    fn retain(until: &str) -> Decision {
        Decision::Retain {
            until: until.parse().unwrap(),
            basis: "law".into(),
        }
    }

    #[test]
    fn input_round_trips_and_matches_the_documented_shape() {
        let input = sample_input();
        let text = serde_json::to_string(&input).unwrap();
        assert_eq!(serde_json::from_str::<EvalInput>(&text).unwrap(), input);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["records"][1],
            json!({"table": "notes", "category": "note", "attrs": {}, "group": true})
        );
        // Absent optional hold fields are omitted, not null.
        assert_eq!(
            v["holds"][0],
            json!({"id": 3, "case": "CASE-1", "categories": ["invoice"]})
        );
        // attrs and group may be omitted by a writer.
        let r: Record = serde_json::from_str(r#"{"table":"t","category":"c"}"#).unwrap();
        assert!(r.attrs.is_empty() && !r.group);
        assert_eq!(
            input.now_timestamp().unwrap().to_rfc3339(),
            "2025-06-01T00:00:00Z"
        );
    }

    #[test]
    fn decisions_serialise_with_action_tag_and_no_nulls() {
        let cases = [
            (Decision::Erase, json!({"action": "erase"})),
            (
                Decision::Anonymize {
                    until: None,
                    basis: None,
                },
                json!({"action": "anonymize"}),
            ),
            (
                Decision::Anonymize {
                    until: Some("2026-01-01T00:00:00Z".parse().unwrap()),
                    basis: Some("b".into()),
                },
                json!({"action": "anonymize", "until": "2026-01-01T00:00:00Z", "basis": "b"}),
            ),
            (
                retain("2031-01-15T00:00:00Z"),
                json!({"action": "retain", "until": "2031-01-15T00:00:00Z", "basis": "law"}),
            ),
            (
                Decision::Hold { case: "C".into() },
                json!({"action": "hold", "case": "C"}),
            ),
        ];
        for (decision, expected) in cases {
            assert_eq!(serde_json::to_value(&decision).unwrap(), expected);
            assert_eq!(
                serde_json::from_value::<Decision>(expected).unwrap(),
                decision
            );
        }
    }

    #[test]
    fn output_round_trips() {
        let decisions = vec![
            Decision::Erase,
            retain("2031-01-15T00:00:00Z"),
            Decision::Hold { case: "C".into() },
        ];
        let bytes = encode_output(&EvalOutput::Decisions(decisions.clone()));
        assert_eq!(decode_output(&bytes, 3).unwrap(), decisions);
        assert_eq!(
            encode_output(&EvalOutput::Decisions(vec![])),
            br#"{"decisions":[]}"#
        );
        assert_eq!(
            encode_output(&EvalOutput::Error("no".into())),
            br#"{"error":"no"}"#
        );
    }

    #[test]
    fn canonical_check_matches_parse_and_print() {
        // Every month and day number, edge times, and malformed variants.
        let mut texts = Vec::new();
        for year in ["0000", "1900", "2000", "2023", "2024", "9999"] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    for time in ["00:00:00", "23:59:59", "23:59:60", "24:00:00", "12:60:00"] {
                        texts.push(format!("{year}-{month:02}-{day:02}T{time}Z"));
                    }
                }
            }
        }
        texts.extend(
            [
                "2024-01-15t00:00:00Z",
                "2024-01-15T00:00:00z",
                "2024-01-15 00:00:00Z",
                "2024/01/15T00:00:00Z",
                "2024-01-15T00:00:0aZ",
                "20x4-01-15T00:00:00Z",
            ]
            .map(String::from),
        );
        for text in texts {
            let unchanged = Timestamp::parse_rfc3339(&text).is_ok_and(|t| t.to_rfc3339() == text);
            assert_eq!(
                Until::from_canonical(text.as_bytes()).is_some(),
                unchanged,
                "{text}"
            );
        }
    }

    #[test]
    fn decode_normalises_dates_to_utc() {
        let out = br#"{"decisions":[{"action":"retain","until":"2031-01-15T01:00:00.25+01:00","basis":"law"},
                      {"action":"anonymize","until":"2026-01-01t00:00:00z"}]}"#;
        assert_eq!(
            decode_output(out, 2).unwrap(),
            vec![
                retain("2031-01-15T00:00:00Z"),
                Decision::Anonymize {
                    until: Some("2026-01-01T00:00:00Z".parse().unwrap()),
                    basis: None
                }
            ]
        );
    }

    #[test]
    fn decode_rejects_each_kind_of_malformed_output() {
        let malformed: &[&[u8]] = &[
            b"",
            b"{",
            b"[]",
            b"null",
            br#"{"decisions":[]} trailing"#,
            br#"{"decisions":{}}"#,
            br#"{"decision":[]}"#,
            br#"{"decisions":[],"error":"x"}"#,
            br#"{"decisions":[{"action":"delete"}]}"#,
            br#"{"decisions":[{"until":"2030-01-01T00:00:00Z"}]}"#,
            br#"{"decisions":[{"action":"retain","basis":"law"}]}"#,
            br#"{"decisions":[{"action":"retain","until":"2030-01-01T00:00:00Z"}]}"#,
            br#"{"decisions":[{"action":"hold"}]}"#,
            br#"{"decisions":[{"action":"anonymize","untill":"2030-01-01T00:00:00Z"}]}"#,
            br#"{"decisions":[{"action":"erase","note":"x"}]}"#,
            br#"{"error":42}"#,
        ];
        for bytes in malformed {
            let got = decode_output(bytes, 1);
            assert!(
                matches!(got, Err(AbiError::Malformed(_))),
                "{:?} gave {got:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(
            decode_output(b"{\"decisions\":[\xff]}", 1),
            Err(AbiError::NotUtf8)
        );
    }

    #[test]
    fn decode_rejects_bad_field_values() {
        let bad_date = br#"{"decisions":[{"action":"retain","until":"next year","basis":"law"}]}"#;
        assert!(matches!(
            decode_output(bad_date, 1),
            Err(AbiError::BadTimestamp(_))
        ));
        let bad_anon = br#"{"decisions":[{"action":"anonymize","until":"2030-02-30T00:00:00Z"}]}"#;
        assert!(matches!(
            decode_output(bad_anon, 1),
            Err(AbiError::BadTimestamp(_))
        ));
        let long_date = format!(
            r#"{{"decisions":[{{"action":"retain","until":"{}","basis":"law"}}]}}"#,
            "9".repeat(65)
        );
        assert!(matches!(
            decode_output(long_date.as_bytes(), 1),
            Err(AbiError::FieldTooLong { field: "until", .. })
        ));
        let long_basis = format!(
            r#"{{"decisions":[{{"action":"retain","until":"2030-01-01T00:00:00Z","basis":"{}"}}]}}"#,
            "x".repeat(4097)
        );
        assert_eq!(
            decode_output(long_basis.as_bytes(), 1),
            Err(AbiError::FieldTooLong {
                field: "basis",
                len: 4097,
                max: MAX_TEXT_LEN
            })
        );
        let long_case = format!(
            r#"{{"decisions":[{{"action":"hold","case":"{}"}}]}}"#,
            "x".repeat(5000)
        );
        assert!(matches!(
            decode_output(long_case.as_bytes(), 1),
            Err(AbiError::FieldTooLong { field: "case", .. })
        ));
        let empty_basis =
            br#"{"decisions":[{"action":"retain","until":"2030-01-01T00:00:00Z","basis":" "}]}"#;
        assert_eq!(
            decode_output(empty_basis, 1),
            Err(AbiError::EmptyField("basis"))
        );
        assert_eq!(
            decode_output(br#"{"decisions":[{"action":"hold","case":""}]}"#, 1),
            Err(AbiError::EmptyField("case"))
        );
    }

    #[test]
    fn decode_checks_the_decision_count() {
        let one = br#"{"decisions":[{"action":"erase"}]}"#;
        assert_eq!(decode_output(one, 1).unwrap(), vec![Decision::Erase]);
        assert_eq!(
            decode_output(one, 0),
            Err(AbiError::WrongDecisionCount {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            decode_output(one, 2),
            Err(AbiError::WrongDecisionCount {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(decode_output(br#"{"decisions":[]}"#, 0).unwrap(), vec![]);
    }

    #[test]
    fn refusal_becomes_module_refused_with_bounded_message() {
        assert_eq!(
            decode_output(br#"{"error":"bad config: unknown action \"keep\""}"#, 3),
            Err(AbiError::ModuleRefused(
                "bad config: unknown action \"keep\"".into()
            ))
        );
        let long = format!(r#"{{"error":"{}"}}"#, "é".repeat(3000));
        let Err(AbiError::ModuleRefused(msg)) = decode_output(long.as_bytes(), 0) else {
            panic!("not refused")
        };
        assert!(msg.len() <= MAX_TEXT_LEN && msg.len() >= MAX_TEXT_LEN - 1);
    }

    #[test]
    fn precedence_orders_protection() {
        let anon = Decision::Anonymize {
            until: None,
            basis: None,
        };
        let hold = Decision::Hold { case: "C".into() };
        let r = retain("2030-01-01T00:00:00Z");
        assert!(Decision::Erase.precedence() < anon.precedence());
        assert!(anon.precedence() < r.precedence());
        assert!(r.precedence() < hold.precedence());
        // Most protective wins regardless of argument order.
        let all = [Decision::Erase, anon.clone(), r.clone(), hold.clone()];
        for a in &all {
            for b in &all {
                let winner = if a.precedence() >= b.precedence() {
                    a
                } else {
                    b
                };
                assert_eq!(&Decision::combine(a.clone(), b.clone()), winner);
            }
        }
        assert_eq!(Decision::combine(anon, r.clone()), r);
        // Folding several slots.
        let slots = vec![
            Decision::Erase,
            retain("2030-01-01T00:00:00Z"),
            retain("2032-01-01T00:00:00Z"),
            Decision::Erase,
        ];
        assert_eq!(
            slots.into_iter().reduce(combine),
            Some(retain("2032-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn later_retention_wins() {
        let early = retain("2030-01-01T00:00:00Z");
        let late = Decision::Retain {
            until: "2031-01-01T00:00:00Z".parse().unwrap(),
            basis: "tax".into(),
        };
        assert_eq!(Decision::combine(early.clone(), late.clone()), late);
        assert_eq!(Decision::combine(late.clone(), early.clone()), late);
        // Compared as instants, not as text: 23:00-05:00 is after 01:00Z next day.
        let offset = Decision::Retain {
            until: "2030-12-31T23:00:00-05:00".parse().unwrap(),
            basis: "x".into(),
        };
        let utc = Decision::Retain {
            until: "2031-01-01T01:00:00Z".parse().unwrap(),
            basis: "y".into(),
        };
        assert_eq!(Decision::combine(utc, offset.clone()), offset);
        // Equal dates keep the first.
        let same = Decision::Retain {
            until: "2030-01-01T00:00:00Z".parse().unwrap(),
            basis: "other".into(),
        };
        assert_eq!(Decision::combine(early.clone(), same), early);
    }

    #[test]
    fn anonymize_keeping_longer_wins() {
        let forever = Decision::Anonymize {
            until: None,
            basis: Some("stats".into()),
        };
        let short = Decision::Anonymize {
            until: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            basis: None,
        };
        let long = Decision::Anonymize {
            until: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            basis: None,
        };
        assert_eq!(Decision::combine(short.clone(), forever.clone()), forever);
        assert_eq!(Decision::combine(forever.clone(), short.clone()), forever);
        assert_eq!(Decision::combine(short.clone(), long.clone()), long);
        assert_eq!(Decision::combine(long.clone(), short), long);
    }

    #[test]
    fn ties_keep_the_first_argument() {
        let a = Decision::Hold { case: "A".into() };
        let b = Decision::Hold { case: "B".into() };
        assert_eq!(Decision::combine(a.clone(), b), a);
        assert_eq!(
            Decision::combine(Decision::Erase, Decision::Erase),
            Decision::Erase
        );
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
