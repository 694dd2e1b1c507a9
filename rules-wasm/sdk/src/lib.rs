//! Write a pg_erasure rule module as one plain Rust function.
//!
//! ```
//! use erasure_rules_sdk::{Decision, EvalInput};
//!
//! fn rules(input: &EvalInput) -> Result<Vec<Decision>, String> {
//!     Ok(input.records.iter().map(|_| Decision::Erase).collect())
//! }
//!
//! erasure_rules_sdk::export_rules!(rules);
//! ```
//!
//! Built as a `cdylib` for `wasm32-unknown-unknown`, the crate then exports
//! what ABI version 1 (`rules-wasm/ABI.md`) requires: `memory` (rustc adds
//! it), `erasure_abi_version`, `alloc` and `evaluate`. The function never
//! sees bytes or pointers: it gets the parsed [`EvalInput`] and returns one
//! [`Decision`] per record, or `Err(reason)` to refuse the input, which
//! aborts the erasure on the host.
//!
//! Helpers for the usual policy steps: [`parse_config`] (the installation's
//! configuration into your own typed struct), [`attr_timestamp`] (a per-row
//! date the data map exposes), [`retention_end`] (start + period, or `None`
//! when already over), [`covering_hold`] and [`hold_decision`] (legal holds).
//! `rules-wasm/template` is a complete, commented module to copy.

pub use erasure_abi;
pub use erasure_abi::{
    combine, decode_output, encode_output, AbiError, Decision, EvalInput, EvalOutput, Hold, Period,
    Record, Timestamp, Until, ABI_VERSION,
};

use serde::de::DeserializeOwned;

pub mod view;

/// Reads the installation's configuration (`input.config`) into the module's own type.
///
/// Derive `serde::Deserialize` for it, preferably with `#[serde(deny_unknown_fields)]` so a
/// misspelt key is refused instead of silently ignored. `null` reads as `{}`; anything but
/// an object or `null` is refused. The error
/// message starts with `invalid config:`; return it from the rule function and the module
/// refuses the input. Call it on every evaluation, records or not: the host's installation
/// smoke test has no records, so a bad configuration is then refused at installation.
pub fn parse_config<T: DeserializeOwned>(input: &EvalInput) -> Result<T, String> {
    let empty = serde_json::Value::Object(Default::default());
    let value = match &input.config {
        serde_json::Value::Null => &empty,
        // serde would also read a struct from an array; a configuration is an object.
        serde_json::Value::Object(_) => &input.config,
        _ => return Err("invalid config: expected a JSON object".into()),
    };
    T::deserialize(value).map_err(|e| format!("invalid config: {e}"))
}

/// The record's attribute `name` as a timestamp, when the data map exposes it for the
/// record's table and it holds an RFC 3339 date. `None` otherwise, and always for group
/// records (they have no attributes): decide then how to count, usually from `now`.
pub fn attr_timestamp(record: &Record, name: &str) -> Option<Timestamp> {
    record
        .attrs
        .get(name)
        .and_then(|v| v.as_str())
        .and_then(|s| Timestamp::parse_rfc3339(s).ok())
}

/// The first of `holds` that covers the record's category (a hold without `categories`
/// covers every category). The host passes only holds that are active and apply to the
/// request, so no date check is needed.
pub fn covering_hold<'a>(holds: &'a [Hold], record: &Record) -> Option<&'a Hold> {
    holds.iter().find(|hold| {
        hold.categories
            .as_ref()
            .is_none_or(|categories| categories.iter().any(|c| **c == *record.category))
    })
}

/// The `hold` decision for a hold, named by its case reference (by its id when the case
/// reference is blank, which the host would refuse).
pub fn hold_decision(hold: &Hold) -> Decision {
    let case = if hold.case.trim().is_empty() {
        format!("legal hold #{}", hold.id)
    } else {
        hold.case.clone()
    };
    Decision::Hold { case }
}

/// When a period that starts at `start` ends, as the ABI writes it, or `None` when it has
/// already ended by `now` (ending exactly at `now` counts as ended): then nothing is left
/// to keep. Fails only past the year 9999.
pub fn retention_end(
    start: Timestamp,
    period: &Period,
    now: Timestamp,
) -> Result<Option<Until>, String> {
    let fail = |e: AbiError| format!("retention end: {e}");
    let end = start.add_period(period).map_err(fail)?;
    (end > now)
        .then(|| Until::from_timestamp(end).map_err(fail))
        .transpose()
}

/// [`run_json`] with a fast path: `fast(input, output)` either writes the complete answer into
/// `output` and returns `true`, or returns `false` (whatever it wrote is discarded) and
/// `rules` decides as in [`run_json`]. The fast path must give the same answer as `rules`
/// whenever it answers; [`view::InputView`] helps it read the input without copying.
pub fn run_json_with<F, G>(input: &[u8], rules: F, fast: G) -> Vec<u8>
where
    F: FnOnce(&EvalInput) -> Result<Vec<Decision>, String>,
    G: FnOnce(&[u8], &mut Vec<u8>) -> bool,
{
    let mut output = Vec::new();
    if fast(input, &mut output) {
        return output;
    }
    run_json(input, rules)
}

/// Runs a rule function on raw input JSON and returns the output JSON.
///
/// Never fails: unreadable input, a wrong ABI version, `Err` from `rules` or
/// a wrong number of decisions all become `{"error": "..."}`, so the host
/// always gets an answer it can report. Pure, so it is testable on the host.
pub fn run_json<F>(input: &[u8], rules: F) -> Vec<u8>
where
    F: FnOnce(&EvalInput) -> Result<Vec<Decision>, String>,
{
    encode_output(&run(input, rules))
}

fn run<F>(input: &[u8], rules: F) -> EvalOutput
where
    F: FnOnce(&EvalInput) -> Result<Vec<Decision>, String>,
{
    let input: EvalInput = match serde_json::from_slice(input) {
        Ok(input) => input,
        Err(e) => return EvalOutput::Error(format!("input is not ABI v{ABI_VERSION} JSON: {e}")),
    };
    if input.abi != ABI_VERSION {
        return EvalOutput::Error(format!(
            "input is ABI version {}, this module speaks version {ABI_VERSION}",
            input.abi
        ));
    }
    match rules(&input) {
        // Caught here so the author sees their own mistake, not a host error.
        Ok(decisions) if decisions.len() != input.records.len() => EvalOutput::Error(format!(
            "rule function returned {} decisions for {} records",
            decisions.len(),
            input.records.len()
        )),
        Ok(decisions) => EvalOutput::Decisions(decisions),
        Err(reason) => EvalOutput::Error(reason),
    }
}

/// Packs an output location the way `evaluate` returns it: pointer in the
/// high 32 bits, length in the low 32 bits.
pub fn pack_output(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Buffers behind the exports generated by [`export_rules!`]; not a public API.
#[doc(hidden)]
pub mod __rt {
    use std::cell::RefCell;

    use crate::{Decision, EvalInput};

    // A module instance is single-threaded, so thread-locals are plain
    // statics here; they keep both buffers alive between host calls
    // without `static mut`.
    thread_local! {
        pub(crate) static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        pub(crate) static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// Replaces the input buffer with `len` zero bytes and returns its address.
    pub fn alloc(len: usize) -> usize {
        INPUT.with(|buf| {
            let mut buf = buf.borrow_mut();
            *buf = vec![0; len];
            buf.as_ptr() as usize
        })
    }

    /// Evaluates the input buffer and returns the output buffer's (address, length).
    ///
    /// The host passes back what `alloc` returned; the input is read from
    /// the buffer itself, so a wrong pointer yields a refusal instead of an
    /// out-of-bounds read.
    pub fn evaluate<F>(ptr: usize, len: usize, rules: F) -> (usize, usize)
    where
        F: FnOnce(&EvalInput) -> Result<Vec<Decision>, String>,
    {
        evaluate_with(ptr, len, rules, |_, _| false)
    }

    /// [`evaluate`] trying `fast(input, output)` first: it either writes the complete answer
    /// and returns `true`, or returns `false` and `rules` decides through [`crate::run_json`].
    pub fn evaluate_with<F, G>(ptr: usize, len: usize, rules: F, fast: G) -> (usize, usize)
    where
        F: FnOnce(&EvalInput) -> Result<Vec<Decision>, String>,
        G: FnOnce(&[u8], &mut Vec<u8>) -> bool,
    {
        let output = INPUT.with(|buf| {
            let buf = buf.borrow();
            if ptr != buf.as_ptr() as usize || len > buf.len() {
                let msg = "evaluate was called with a buffer that alloc did not return";
                return crate::encode_output(&crate::EvalOutput::Error(msg.into()));
            }
            crate::run_json_with(&buf[..len], rules, fast)
        });
        OUTPUT.with(|out| {
            let mut out = out.borrow_mut();
            *out = output;
            (out.as_ptr() as usize, out.len())
        })
    }
}

/// Exports `fn(&EvalInput) -> Result<Vec<Decision>, String>` as an ABI v1
/// rule module.
///
/// Generates `erasure_abi_version() -> i32`, `alloc(len: i32) -> i32` and
/// `evaluate(ptr: i32, len: i32) -> i64`. They are only emitted when
/// compiling for wasm32, so the same crate can be linked as an ordinary
/// rlib for host-side tests without exporting C symbols. The Rust names are
/// private-looking (`__erasure_*`) so a rule function may itself be called
/// `evaluate` or `alloc`.
///
/// `export_rules!(rules, fast)` also takes a fast path `fn(&[u8], &mut Vec<u8>) -> bool`
/// (see [`run_json_with`]).
#[macro_export]
macro_rules! export_rules {
    ($rules:path) => {
        $crate::export_rules!($rules, |_: &[u8], _: &mut Vec<u8>| false);
    };
    ($rules:path, $fast:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[export_name = "erasure_abi_version"]
            pub extern "C" fn __erasure_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[export_name = "alloc"]
            pub extern "C" fn __erasure_alloc(len: i32) -> i32 {
                // A negative length is a host bug; an empty buffer makes it visible.
                let len = usize::try_from(len).unwrap_or(0);
                $crate::__rt::alloc(len) as i32
            }

            #[export_name = "evaluate"]
            pub extern "C" fn __erasure_evaluate(ptr: i32, len: i32) -> i64 {
                // wasm32 addresses are unsigned 32-bit values passed as i32.
                let (out_ptr, out_len) = $crate::__rt::evaluate_with(
                    ptr as u32 as usize,
                    len as u32 as usize,
                    $rules,
                    $fast,
                );
                $crate::pack_output(out_ptr as u32, out_len as u32)
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn input_json(records: usize) -> Vec<u8> {
        let records: Vec<Value> = (0..records)
            .map(|i| json!({"table": format!("t{i}"), "category": "c"}))
            .collect();
        serde_json::to_vec(&json!({
            "abi": 1, "slot": "s", "now": "2025-01-01T00:00:00Z", "config": {},
            "request": {}, "holds": [], "records": records
        }))
        .unwrap()
    }

    fn erase_all(input: &EvalInput) -> Result<Vec<Decision>, String> {
        Ok(input.records.iter().map(|_| Decision::Erase).collect())
    }

    fn output(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn answers_with_one_decision_per_record() {
        assert_eq!(run_json(&input_json(0), erase_all), br#"{"decisions":[]}"#);
        let out = run_json(&input_json(2), erase_all);
        assert_eq!(
            decode_output(&out, 2).unwrap(),
            vec![Decision::Erase, Decision::Erase]
        );
    }

    #[test]
    fn passes_the_parsed_input_to_the_rules() {
        let out = run_json(&input_json(3), |input| {
            assert_eq!(&*input.records[2].table, "t2");
            assert_eq!(input.slot, "s");
            Ok(input
                .records
                .iter()
                .map(|r| Decision::Hold {
                    case: r.table.to_string(),
                })
                .collect())
        });
        assert_eq!(
            output(&out)["decisions"][1],
            json!({"action": "hold", "case": "t1"})
        );
    }

    #[test]
    fn refusal_is_reported_as_error() {
        let out = run_json(&input_json(1), |_| {
            Err("config: unknown action \"keep\"".into())
        });
        assert_eq!(
            output(&out),
            json!({"error": "config: unknown action \"keep\""})
        );
    }

    #[test]
    fn wrong_count_from_rules_is_an_error_not_a_short_answer() {
        let out = run_json(&input_json(2), |_| Ok(vec![Decision::Erase]));
        assert_eq!(
            output(&out),
            json!({"error": "rule function returned 1 decisions for 2 records"})
        );
    }

    #[test]
    fn bad_input_is_an_error_and_rules_are_not_called() {
        for bad in [&b"not json"[..], b"{}", b"\xff\xfe", br#"{"abi":1}"#] {
            let out = run_json(bad, |_| panic!("rules called on bad input"));
            assert!(output(&out)["error"]
                .as_str()
                .unwrap()
                .starts_with("input is not ABI v1 JSON"));
        }
        let mut v: Value = serde_json::from_slice(&input_json(0)).unwrap();
        v["abi"] = json!(2);
        let out = run_json(&serde_json::to_vec(&v).unwrap(), |_| {
            panic!("rules called on ABI 2")
        });
        assert_eq!(
            output(&out),
            json!({"error": "input is ABI version 2, this module speaks version 1"})
        );
    }

    fn input_with(config: Value, records: Vec<Record>, holds: Vec<Hold>) -> EvalInput {
        EvalInput {
            abi: ABI_VERSION,
            slot: "retention".into(),
            now: "2025-06-01T12:00:00Z".into(),
            config,
            request: json!({}),
            holds,
            records,
        }
    }

    fn record(category: &str, attrs: Value) -> Record {
        Record {
            table: format!("{category}s").into(),
            category: category.into(),
            attrs: attrs.as_object().cloned().unwrap_or_default(),
            group: false,
        }
    }

    fn hold(id: i64, case: &str, categories: Option<&[&str]>) -> Hold {
        Hold {
            id,
            case: case.into(),
            categories: categories.map(|c| c.iter().map(|s| s.to_string()).collect()),
            expires_at: None,
        }
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct TestConfig {
        period: String,
        verbose: bool,
    }

    impl Default for TestConfig {
        fn default() -> Self {
            TestConfig {
                period: "P1Y".into(),
                verbose: false,
            }
        }
    }

    #[test]
    fn parse_config_reads_the_authors_type() {
        let parse = |config: Value| parse_config::<TestConfig>(&input_with(config, vec![], vec![]));
        assert_eq!(parse(json!({})), Ok(TestConfig::default()));
        assert_eq!(parse(Value::Null), Ok(TestConfig::default()));
        assert_eq!(
            parse(json!({"period": "P3Y"})).unwrap().period,
            "P3Y".to_string()
        );
        for bad in [
            json!({"perod": "P3Y"}),
            json!({"verbose": "yes"}),
            json!([]),
        ] {
            let err = parse(bad.clone()).expect_err(&bad.to_string());
            assert!(err.starts_with("invalid config: "), "{err}");
        }
        assert!(parse(json!({"perod": 1})).unwrap_err().contains("perod"));
    }

    #[test]
    fn attr_timestamp_reads_only_rfc3339_strings() {
        let r = record("invoice", json!({"issued_at": "2024-01-15T09:30:00+01:00"}));
        assert_eq!(
            attr_timestamp(&r, "issued_at").map(Timestamp::to_rfc3339),
            Some("2024-01-15T08:30:00Z".into())
        );
        assert_eq!(attr_timestamp(&r, "placed_at"), None);
        for attrs in [
            json!({"issued_at": "yesterday"}),
            json!({"issued_at": 1700000000}),
            json!({"issued_at": null}),
            json!({}),
        ] {
            assert_eq!(attr_timestamp(&record("invoice", attrs), "issued_at"), None);
        }
    }

    #[test]
    fn covering_hold_matches_categories_and_names_the_case() {
        let order = record("order", json!({}));
        let holds = vec![
            hold(1, "INVOICES-ONLY", Some(&["invoice"])),
            hold(2, "EVERYTHING", None),
        ];
        assert_eq!(covering_hold(&holds, &order).map(|h| h.id), Some(2));
        assert_eq!(covering_hold(&holds[..1], &order), None);
        assert_eq!(covering_hold(&[], &order), None);
        let orders_hold = [hold(3, "ORDERS", Some(&["order", "invoice"]))];
        assert_eq!(
            covering_hold(&orders_hold, &order).map(hold_decision),
            Some(Decision::Hold {
                case: "ORDERS".into()
            })
        );
        assert_eq!(
            hold_decision(&hold(9, "  ", None)),
            Decision::Hold {
                case: "legal hold #9".into()
            }
        );
    }

    #[test]
    fn retention_end_is_none_once_the_period_is_over() {
        let now = Timestamp::parse_rfc3339("2025-06-01T12:00:00Z").unwrap();
        let p = Period::parse("P3Y").unwrap();
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        assert_eq!(
            retention_end(at("2024-02-29T10:00:00Z"), &p, now),
            Ok(Some("2027-02-28T10:00:00Z".parse().unwrap()))
        );
        assert_eq!(retention_end(at("2022-06-01T12:00:00Z"), &p, now), Ok(None));
        assert_eq!(
            retention_end(at("2022-06-01T12:00:01Z"), &p, now),
            Ok(Some("2025-06-01T12:00:01Z".parse().unwrap()))
        );
        let err = retention_end(at("9998-01-01T00:00:00Z"), &p, now).unwrap_err();
        assert!(err.contains("9999"), "{err}");
    }

    #[test]
    fn packs_pointer_high_and_length_low() {
        assert_eq!(pack_output(0x10, 0x20), 0x0000_0010_0000_0020);
        assert_eq!(
            pack_output(0xffff_fff0, 0xffff_ffff) as u64,
            0xffff_fff0_ffff_ffff
        );
    }

    #[test]
    fn runtime_reads_only_the_buffer_alloc_returned() {
        let input = input_json(1);
        let ptr = __rt::alloc(input.len());
        // Stand-in for the host writing into guest memory.
        __rt::INPUT.with(|b| b.borrow_mut().copy_from_slice(&input));
        let (out_ptr, out_len) = __rt::evaluate(ptr, input.len(), erase_all);
        let out = __rt::OUTPUT.with(|o| o.borrow().clone());
        assert_eq!(
            (out_ptr, out_len),
            (
                __rt::OUTPUT.with(|o| o.borrow().as_ptr() as usize),
                out.len()
            )
        );
        assert_eq!(decode_output(&out, 1).unwrap(), vec![Decision::Erase]);

        let (_, len) = __rt::evaluate(ptr + 1, input.len(), erase_all);
        let out = __rt::OUTPUT.with(|o| o.borrow().clone());
        assert_eq!(len, out.len());
        assert!(matches!(
            decode_output(&out, 1),
            Err(AbiError::ModuleRefused(_))
        ));
        let (_, _) = __rt::evaluate(ptr, input.len() + 1, erase_all);
        let out = __rt::OUTPUT.with(|o| o.borrow().clone());
        assert!(matches!(
            decode_output(&out, 1),
            Err(AbiError::ModuleRefused(_))
        ));
    }
}
