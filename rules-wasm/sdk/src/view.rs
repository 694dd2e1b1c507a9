//! A borrowed, allocation-free view of the input JSON, for modules that decide thousands
//! of records per call and cannot afford to copy each one into owned `String`s and maps.
//!
//! [`InputView::parse`] accepts a subset of what [`EvalInput`](crate::EvalInput)'s serde
//! reader accepts: every field present exactly once, strings without `\u` escapes, plain
//! numbers. For anything outside that subset it answers `None` (never a different reading),
//! so a module falls back to [`run_json`](crate::run_json) and gets the same answer, or the
//! same error, as if it had never tried. [`export_rules!`](crate::export_rules) takes such a
//! fast path as its optional second argument.

use std::borrow::Cow;

pub use erasure_abi::json::{read_str, skip_ws};

use erasure_abi::json::{bytes_eq, literal_at};

/// Nesting deeper than this is left to serde_json (which has its own limit).
const MAX_DEPTH: u32 = 64;

/// The top-level fields of the input, borrowed. `config`, `request` and `holds` are the raw
/// JSON text of their values (checked to be well-formed, and `holds` to have the types
/// [`Hold`](crate::Hold) requires); the records are [`InputView::records`].
#[derive(Debug, Clone)]
pub struct InputView<'a> {
    pub abi: i32,
    pub slot: Cow<'a, str>,
    pub now: Cow<'a, str>,
    pub config: &'a str,
    pub request: &'a str,
    pub holds: &'a str,
    records: Vec<RecordView<'a>>,
}

/// One record, borrowed from the input.
#[derive(Debug, Clone)]
pub struct RecordView<'a> {
    pub table: Cow<'a, str>,
    pub category: Cow<'a, str>,
    /// Raw JSON of the `attrs` object (`{}` when absent).
    attrs: &'a [u8],
    pub group: bool,
}

impl<'a> InputView<'a> {
    /// Reads the top level and checks every part of it (the records included); `None` when
    /// the input is outside the subset this reader handles.
    pub fn parse(bytes: &'a [u8]) -> Option<InputView<'a>> {
        let mut fields: [Option<(usize, usize)>; 7] = [None; 7];
        let mut records = Vec::new();
        const NAMES: [&str; 7] = [
            "abi", "slot", "now", "config", "request", "holds", "records",
        ];
        let end = object(bytes, skip_ws(bytes, 0), |key, at| {
            let slot = NAMES.iter().position(|n| *n == key);
            let end = match slot {
                Some(6) => {
                    records.clear();
                    records_end(bytes, at, &mut records)?
                }
                Some(5) => holds_end(bytes, at)?,
                _ => skip_value(bytes, at, 0)?,
            };
            if let Some(slot) = slot {
                if fields[slot].replace((at, end)).is_some() {
                    return None; // duplicate field: serde refuses it
                }
            }
            Some(end)
        })?;
        if skip_ws(bytes, end) != bytes.len() {
            return None;
        }
        let [Some(abi), Some(slot), Some(now), Some(config), Some(request), Some(holds), Some(_)] =
            fields
        else {
            return None;
        };
        let text = |(s, e): (usize, usize)| std::str::from_utf8(&bytes[s..e]).ok();
        let abi = text(abi)?;
        if !abi.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        Some(InputView {
            abi: abi.parse().ok()?,
            slot: whole_str(bytes, slot)?,
            now: whole_str(bytes, now)?,
            config: text(config)?,
            request: text(request)?,
            holds: text(holds)?,
            records,
        })
    }

    /// The records, in order.
    pub fn records(&self) -> &[RecordView<'a>] {
        &self.records
    }
}

impl<'a> RecordView<'a> {
    /// The attribute `name` when it is a JSON string.
    pub fn attr_str(&self, name: &str) -> Option<Cow<'a, str>> {
        let bytes = self.attrs;
        // Usually the one attribute: `{"name":"value"}`.
        if let Some(at) = bytes
            .get(2..2 + name.len())
            .filter(|key| bytes[1] == b'"' && bytes_eq(key, name.as_bytes()))
            .and_then(|_| literal(bytes, 2 + name.len(), b"\":"))
        {
            if let Some((value, end)) = read_str(bytes, at) {
                if end + 1 == bytes.len() {
                    return Some(value);
                }
            }
        }
        let mut found = None;
        object(bytes, 0, |key, at| {
            let end = skip_value(bytes, at, 0)?;
            if bytes_eq(key.as_bytes(), name.as_bytes()) {
                // The last occurrence wins, as in serde_json's map.
                found = read_str(bytes, at).map(|(text, _)| text);
            }
            Some(end)
        })?;
        found
    }
}

fn whole_str(bytes: &[u8], (start, end): (usize, usize)) -> Option<Cow<'_, str>> {
    let (text, next) = read_str(bytes, start)?;
    (next == end).then_some(text)
}

/// Reads an object at `at`, calling `field(key, value_start)` for each member, which returns
/// the end of the value; returns the index after the closing brace. `None` when the object is
/// malformed, a key is outside what [`read_str`] reads, or `field` returns `None`.
pub fn object<'a>(
    bytes: &'a [u8],
    at: usize,
    mut field: impl FnMut(Cow<'a, str>, usize) -> Option<usize>,
) -> Option<usize> {
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(bytes, at + 1);
    if bytes.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        let (key, next) = read_str(bytes, i)?;
        i = skip_ws(bytes, next);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        let end = field(key, skip_ws(bytes, i + 1))?;
        i = skip_ws(bytes, end);
        match bytes.get(i)? {
            b',' => i = skip_ws(bytes, i + 1),
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Reads an array at `at`, calling `item(start)` for each element, which returns its end.
fn array(bytes: &[u8], at: usize, mut item: impl FnMut(usize) -> Option<usize>) -> Option<usize> {
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(bytes, at + 1);
    if bytes.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        i = skip_ws(bytes, item(i)?);
        match bytes.get(i)? {
            b',' => i = skip_ws(bytes, i + 1),
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The end of the JSON value at `at`, checking it is well-formed (`depth` counts the levels
/// already entered); `None` when it is not, or is outside what this reader handles.
pub fn skip_value(bytes: &[u8], at: usize, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *bytes.get(at)? {
        b'"' => read_str(bytes, at).map(|(_, end)| end),
        b'{' => object(bytes, at, |_, v| skip_value(bytes, v, depth + 1)),
        b'[' => array(bytes, at, |v| skip_value(bytes, v, depth + 1)),
        b't' => literal(bytes, at, b"true"),
        b'f' => literal(bytes, at, b"false"),
        b'n' => literal(bytes, at, b"null"),
        _ => number_end(bytes, at, true),
    }
}

/// Whether `bytes[at..]` starts with `lit`; the index after it.
pub fn literal(bytes: &[u8], at: usize, lit: &[u8]) -> Option<usize> {
    literal_at(bytes, at, lit)
}

/// The end of a plain number: `-?(0|[1-9][0-9]*)` with, when `fraction` allows it, `.[0-9]+`;
/// at most 18 digits on either side, no exponent (so serde_json reads it without range or
/// precision questions).
fn number_end(bytes: &[u8], at: usize, fraction: bool) -> Option<usize> {
    let digits = |from: usize| {
        let n = bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (1..=18).contains(&n).then_some(from + n)
    };
    let mut i = at + usize::from(bytes.get(at) == Some(&b'-'));
    if bytes.get(i) == Some(&b'0') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    i = digits(i)?;
    if fraction && bytes.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    match bytes.get(i) {
        Some(b'.' | b'e' | b'E') => None,
        _ => Some(i),
    }
}

/// The end of the `holds` array, each element checked against [`Hold`](crate::Hold):
/// `id` an integer, `case` a string, `categories` null or strings, `expires_at` null or a
/// string, unknown fields ignored, none repeated.
fn holds_end(bytes: &[u8], at: usize) -> Option<usize> {
    array(bytes, at, |start| {
        let mut seen = [false; 4];
        let end = object(bytes, start, |key, v| {
            let (slot, end) = match &*key {
                "id" => (0, number_end(bytes, v, false)?),
                "case" => (1, read_str(bytes, v)?.1),
                "categories" if bytes.get(v) == Some(&b'n') => (2, literal(bytes, v, b"null")?),
                "categories" => (2, array(bytes, v, |s| read_str(bytes, s).map(|(_, e)| e))?),
                "expires_at" if bytes.get(v) == Some(&b'n') => (3, literal(bytes, v, b"null")?),
                "expires_at" => (3, read_str(bytes, v)?.1),
                _ => return skip_value(bytes, v, 1),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return None;
            }
            Some(end)
        })?;
        (seen[0] && seen[1]).then_some(end)
    })
}

/// The end of the `records` array, every record read by [`record`] into `records`.
fn records_end<'a>(bytes: &'a [u8], at: usize, records: &mut Vec<RecordView<'a>>) -> Option<usize> {
    array(bytes, at, |start| {
        let (record, end) = record(bytes, start)?;
        records.push(record);
        Some(end)
    })
}

/// A record written as the host writes it (`table`, `category`, `attrs`, `group`, in that
/// order, no whitespace), read with fixed literals instead of key by key; `None` otherwise.
#[inline(always)]
fn compact_record(bytes: &[u8], at: usize) -> Option<(RecordView<'_>, usize)> {
    let i = literal(bytes, at, b"{\"table\":")?;
    let (table, i) = read_str(bytes, i)?;
    let i = literal(bytes, i, b",\"category\":")?;
    let (category, i) = read_str(bytes, i)?;
    let start = literal(bytes, i, b",\"attrs\":")?;
    let end = object(bytes, start, |_, value| skip_value(bytes, value, 1))?;
    let (group, next) = match literal(bytes, end, b",\"group\":false}") {
        Some(next) => (false, next),
        None => (true, literal(bytes, end, b",\"group\":true}")?),
    };
    let record = RecordView {
        table,
        category,
        attrs: &bytes[start..end],
        group,
    };
    Some((record, next))
}

/// One record at `at` as [`Record`](crate::Record) reads it: `table` and `category` strings,
/// `attrs` an object, `group` a boolean, unknown fields ignored, none repeated.
fn record(bytes: &[u8], at: usize) -> Option<(RecordView<'_>, usize)> {
    if let Some(found) = compact_record(bytes, at) {
        return Some(found);
    }
    let (mut table, mut category, mut attrs, mut group) = (None, None, None, None);
    let end = object(bytes, at, |key, v| {
        let end;
        let repeated = match &*key {
            "table" => {
                let (text, e) = read_str(bytes, v)?;
                end = e;
                table.replace(text).is_some()
            }
            "category" => {
                let (text, e) = read_str(bytes, v)?;
                end = e;
                category.replace(text).is_some()
            }
            "attrs" => {
                end = object(bytes, v, |_, value| skip_value(bytes, value, 1))?;
                attrs.replace(&bytes[v..end]).is_some()
            }
            "group" => {
                let (value, e) = match bytes.get(v)? {
                    b't' => (true, literal(bytes, v, b"true")?),
                    _ => (false, literal(bytes, v, b"false")?),
                };
                end = e;
                group.replace(value).is_some()
            }
            _ => return skip_value(bytes, v, 1),
        };
        (!repeated).then_some(end)
    })?;
    let record = RecordView {
        table: table?,
        category: category?,
        attrs: attrs.unwrap_or(b"{}"),
        group: group.unwrap_or(false),
    };
    Some((record, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EvalInput;
    use serde_json::json;

    /// abi, slot, now and each record's table, category and group.
    type Reading = (i32, String, String, Vec<(String, String, bool)>);

    /// What serde reads, in the view's terms, for comparison.
    fn via_serde(bytes: &[u8]) -> Option<Reading> {
        let input: EvalInput = serde_json::from_slice(bytes).ok()?;
        let records = input
            .records
            .iter()
            .map(|r| (r.table.clone(), r.category.clone(), r.group))
            .collect();
        Some((input.abi, input.slot, input.now, records))
    }

    fn via_view(bytes: &[u8]) -> Option<Reading> {
        let view = InputView::parse(bytes)?;
        let records = view
            .records()
            .iter()
            .map(|r| (r.table.to_string(), r.category.to_string(), r.group))
            .collect();
        Some((
            view.abi,
            view.slot.to_string(),
            view.now.to_string(),
            records,
        ))
    }

    #[test]
    fn reads_what_serde_reads_or_declines() {
        let base = json!({
            "abi": 1, "slot": "retention", "now": "2025-06-01T12:00:00Z",
            "config": {"a": [1, 2.5, -3, null, true, {"b": "c\n"}]},
            "request": {"subject_kind": "contact", "org_id": null, "request_id": 7},
            "holds": [{"id": 3, "case": "C", "categories": ["invoice"], "expires_at": "2026-01-01T00:00:00Z"},
                      {"id": 4, "case": "D", "categories": null}],
            "records": [
                {"table": "invoices", "category": "invoice", "attrs": {"issued_at": "2024-01-15T00:00:00Z", "n": 1}, "group": false},
                {"table": "notes", "category": "note", "attrs": {}, "group": true},
                {"category": "c", "table": "t", "extra": [1]}
            ]
        });
        let text = serde_json::to_string(&base).unwrap();
        let pretty = serde_json::to_string_pretty(&base).unwrap();
        for good in [&text, &pretty] {
            let view = via_view(good.as_bytes()).expect("the view reads it");
            assert_eq!(Some(view), via_serde(good.as_bytes()));
        }
        let view = InputView::parse(text.as_bytes()).unwrap();
        let first = &view.records()[0];
        assert_eq!(
            first.attr_str("issued_at").as_deref(),
            Some("2024-01-15T00:00:00Z")
        );
        assert_eq!(first.attr_str("n"), None);
        assert_eq!(first.attr_str("missing"), None);

        // Variants: each either read the same as serde, or declined.
        let variants = [
            text.replace("\"abi\":1", "\"abi\":1.0"),
            text.replace("\"abi\":1", "\"abi\":99999999999"),
            text.replace("\"abi\":1", "\"abi\":2"),
            text.replace("\"abi\":1,", ""),
            text.replace("\"group\":true", "\"group\":null"),
            text.replace("\"attrs\":{}", "\"attrs\":null"),
            text.replace("\"attrs\":{}", "\"attrs\":[]"),
            text.replace("\"id\":3", "\"id\":3.5"),
            text.replace("\"id\":3", "\"id\":\"3\""),
            text.replace("\"case\":\"C\"", "\"case\":null"),
            text.replace("\"table\":\"notes\"", "\"table\":\"notes\",\"table\":\"x\""),
            text.replace("\"slot\":\"retention\"", "\"slot\":\"re\\u0074ention\""),
            text.replace("\"slot\":\"retention\"", "\"slot\":\"ré\\\"t\""),
            text.replace("2.5", "2.5e3"),
            text.replace("2.5", "02"),
            text.replace("-3", "-"),
            text.clone() + " x",
            text.replace("\"records\":[", "\"records\":[,"),
            text.replace("}]}", "},]}"),
            text[..text.len() - 1].to_string(),
        ];
        for variant in variants {
            if let Some(view) = via_view(variant.as_bytes()) {
                assert_eq!(Some(view), via_serde(variant.as_bytes()), "{variant}");
            }
        }
    }
}
