//! A borrowed, allocation-free view of the input JSON, for modules that decide thousands
//! of records per call and cannot afford to copy each one into owned `String`s and maps.
//!
//! [`InputView::parse`] accepts a subset of what [`EvalInput`](crate::EvalInput)'s serde
//! reader accepts: every field present exactly once with `records` last (as the host writes
//! it), strings without `\u` escapes, plain numbers. For anything outside that subset it (or
//! [`InputView::try_for_each_record`], [`Records::finish`]) answers `None`, never a different
//! reading, so a module falls back to [`run_json`](crate::run_json) and gets the same answer,
//! or the same error, as if it had never tried. [`export_rules!`](crate::export_rules) takes such a
//! fast path as its optional second argument.

use std::borrow::Cow;

pub use erasure_abi::json::{read_str, skip_ws};

use erasure_abi::json::{bytes_eq, literal_at};

/// Nesting deeper than this is left to serde_json (which has its own limit).
const MAX_DEPTH: u32 = 64;

/// The top-level fields of the input, borrowed. `config`, `request` and `holds` are the raw
/// JSON text of their values (checked to be well-formed, and `holds` to have the types
/// [`Hold`](crate::Hold) requires); the records are read by [`InputView::records`].
#[derive(Debug, Clone)]
pub struct InputView<'a> {
    pub abi: i32,
    pub slot: Cow<'a, str>,
    pub now: Cow<'a, str>,
    pub config: &'a str,
    pub request: &'a str,
    pub holds: &'a str,
    bytes: &'a [u8],
    /// Where the value of `records` starts.
    records_at: usize,
}

/// One record, borrowed from the input.
#[derive(Debug, Clone)]
pub struct RecordView<'a> {
    pub table: Cow<'a, str>,
    pub category: Cow<'a, str>,
    /// Raw JSON of the `attrs` object (`{}` when absent).
    attrs: &'a [u8],
    pub group: bool,
    /// The attribute, when `attrs` holds exactly one and it is a string.
    single: Option<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> InputView<'a> {
    /// Reads the top level and checks every part of it up to `records`, which must come last
    /// (the host writes it last); the records are read and checked by [`records`](Self::records).
    /// `None` when the input is outside the subset this reader handles.
    pub fn parse(bytes: &'a [u8]) -> Option<InputView<'a>> {
        const NAMES: [&str; 6] = ["abi", "slot", "now", "config", "request", "holds"];
        let mut fields: [Option<(usize, usize)>; 6] = [None; 6];
        let mut i = skip_ws(bytes, literal(bytes, skip_ws(bytes, 0), b"{")?);
        let records_at = loop {
            let (key, next) = read_str(bytes, i)?;
            i = skip_ws(bytes, literal(bytes, skip_ws(bytes, next), b":")?);
            if key == "records" {
                break i;
            }
            let slot = NAMES.iter().position(|n| *n == key);
            let end = match slot {
                Some(5) => holds_end(bytes, i)?,
                _ => skip_value(bytes, i, 0)?,
            };
            if let Some(slot) = slot {
                if fields[slot].replace((i, end)).is_some() {
                    return None; // duplicate field: serde refuses it
                }
            }
            i = skip_ws(bytes, literal(bytes, skip_ws(bytes, end), b",")?);
        };
        let [Some(abi), Some(slot), Some(now), Some(config), Some(request), Some(holds)] = fields
        else {
            return None;
        };
        let text = |(s, e): (usize, usize)| {
            let raw = &bytes[s..e];
            // Checked JSON: its strings were checked as UTF-8 and everything else is ASCII.
            debug_assert!(std::str::from_utf8(raw).is_ok());
            // SAFETY: as above; wasm guests would otherwise check the configuration's bytes
            // a second time on every call.
            unsafe { std::str::from_utf8_unchecked(raw) }
        };
        let abi = text(abi);
        if !abi.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        Some(InputView {
            abi: abi.parse().ok()?,
            slot: whole_str(bytes, slot)?,
            now: whole_str(bytes, now)?,
            config: text(config),
            request: text(request),
            holds: text(holds),
            bytes,
            records_at,
        })
    }

    /// The records, in order, read and checked as they are iterated. The input is only
    /// known to be valid once [`Records::finish`] says so: decide while iterating, but
    /// answer only after it.
    pub fn records(&self) -> Records<'a> {
        Records {
            bytes: self.bytes,
            at: self.records_at,
            started: false,
            done: false,
            failed: false,
            memo: None,
        }
    }

    /// Reads every record in order, calling `decide` on each, then checks the rest of the
    /// input: `Some(())` when every record was read, `decide` never returned `None`, and the
    /// input is valid to its end. The same as iterating [`records`](Self::records) and
    /// calling [`Records::finish`], in one loop the compiler can inline.
    pub fn try_for_each_record(
        &self,
        mut decide: impl FnMut(RecordView<'a>) -> Option<()>,
    ) -> Option<()> {
        let bytes = self.bytes;
        let mut memo = None;
        let mut i = skip_ws(bytes, literal(bytes, self.records_at, b"[")?);
        if bytes.get(i) == Some(&b']') {
            i += 1;
        } else {
            loop {
                let (record, end) = match compact_record(bytes, i, &mut memo) {
                    Some(found) => found,
                    None => record(bytes, i)?,
                };
                decide(record)?;
                i = skip_ws(bytes, end);
                match bytes.get(i)? {
                    b',' => i = skip_ws(bytes, i + 1),
                    b']' => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let end = literal(bytes, skip_ws(bytes, i), b"}")?;
        (skip_ws(bytes, end) == bytes.len()).then_some(())
    }

    /// A guess at the number of records, for sizing buffers: the bytes left over the first
    /// record's length, and an eighth more. The records of one call are mostly alike but not
    /// of one length (a date's fraction has up to six digits, as many as are not trailing
    /// zeros), and a guess too low costs most: a vector past its capacity doubles and moves,
    /// and the module's memory keeps the space it left. A guess far too high costs time too:
    /// the host zeroes a module's memory as it grows.
    pub fn records_hint(&self) -> usize {
        let bytes = self.bytes;
        let start = skip_ws(bytes, self.records_at + 1);
        let first = compact_record(bytes, start, &mut None)
            .map_or(64, |(_, next)| next - start)
            .max(1);
        // Each record but the last is followed by a comma.
        let alike = bytes.len().saturating_sub(start) / (first + 1) + 1;
        alike + alike / 8
    }
}

/// Iterator over the records of an [`InputView`]; see [`InputView::records`].
pub struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    started: bool,
    done: bool,
    failed: bool,
    memo: Option<Prefix<'a>>,
}

impl<'a> Records<'a> {
    /// Reads any records not iterated yet and checks the rest of the input; `Some(())` when
    /// every record was read and the input is valid to its end.
    pub fn finish(mut self) -> Option<()> {
        while self.next().is_some() {}
        if self.failed {
            return None;
        }
        let end = literal(self.bytes, skip_ws(self.bytes, self.at), b"}")?;
        (skip_ws(self.bytes, end) == self.bytes.len()).then_some(())
    }

    fn fail(&mut self) -> Option<RecordView<'a>> {
        self.failed = true;
        None
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        if self.done || self.failed {
            return None;
        }
        let bytes = self.bytes;
        let mut i = self.at;
        if !self.started {
            self.started = true;
            let Some(open) = literal(bytes, i, b"[") else {
                return self.fail();
            };
            i = skip_ws(bytes, open);
            if bytes.get(i) == Some(&b']') {
                self.done = true;
                self.at = i + 1;
                return None;
            }
        } else {
            i = skip_ws(bytes, i);
            match bytes.get(i) {
                Some(b',') => i = skip_ws(bytes, i + 1),
                Some(b']') => {
                    self.done = true;
                    self.at = i + 1;
                    return None;
                }
                _ => return self.fail(),
            }
        }
        let found = match compact_record(bytes, i, &mut self.memo) {
            Some(found) => Some(found),
            None => record(bytes, i),
        };
        match found {
            Some((record, end)) => {
                self.at = end;
                Some(record)
            }
            None => self.fail(),
        }
    }
}

impl<'a> RecordView<'a> {
    /// The attribute `name` when it is a JSON string.
    #[inline(always)]
    pub fn attr_str(&self, name: &str) -> Option<Cow<'a, str>> {
        if let Some((key, value)) = &self.single {
            return bytes_eq(key.as_bytes(), name.as_bytes()).then(|| copy(value));
        }
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
#[inline(always)]
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

/// The previous compact record with one string attribute: where its bytes up to that
/// attribute's value start and end, and what they said. A record whose first bytes are the
/// same says the same (same table, category and attribute name), so only its value is read.
struct Prefix<'a> {
    start: usize,
    len: usize,
    /// Where `attrs`' opening brace is, from the start.
    attrs_offset: usize,
    table: Cow<'a, str>,
    category: Cow<'a, str>,
    key: Cow<'a, str>,
}

/// A record written as the host writes it (`table`, `category`, `attrs`, `group`, in that
/// order, no whitespace), read with fixed literals instead of key by key; `None` otherwise.
#[inline(always)]
fn compact_record<'a>(
    bytes: &'a [u8],
    at: usize,
    memo: &mut Option<Prefix<'a>>,
) -> Option<(RecordView<'a>, usize)> {
    if let Some(prefix) = memo.as_ref() {
        let same = bytes
            .get(at..at + prefix.len)
            .is_some_and(|head| bytes_eq(head, &bytes[prefix.start..prefix.start + prefix.len]));
        if same {
            let value_at = at + prefix.len;
            let (value, i) = read_str(bytes, value_at)?;
            let end = literal(bytes, i, b"}")?;
            let (group, next) = group_end(bytes, end)?;
            let attrs_start = at + prefix.attrs_offset;
            let record = RecordView {
                table: copy(&prefix.table),
                category: copy(&prefix.category),
                attrs: &bytes[attrs_start..end],
                group,
                single: Some((copy(&prefix.key), value)),
            };
            return Some((record, next));
        }
    }
    let i = literal(bytes, at, b"{\"table\":")?;
    let (table, i) = read_str(bytes, i)?;
    let i = literal(bytes, i, b",\"category\":")?;
    let (category, i) = read_str(bytes, i)?;
    let start = literal(bytes, i, b",\"attrs\":")?;
    // One string attribute, read once; anything else through `object`.
    let single = literal(bytes, start, b"{").and_then(|i| {
        let (key, i) = read_str(bytes, i)?;
        let value_at = literal(bytes, i, b":")?;
        let (value, i) = read_str(bytes, value_at)?;
        Some((key, value_at, value, literal(bytes, i, b"}")?))
    });
    let (end, single) = match single {
        Some((key, value_at, value, end)) => {
            *memo = Some(Prefix {
                start: at,
                len: value_at - at,
                attrs_offset: start - at,
                table: table.clone(),
                category: category.clone(),
                key: key.clone(),
            });
            (end, Some((key, value)))
        }
        None => (
            object(bytes, start, |_, value| skip_value(bytes, value, 1))?,
            None,
        ),
    };
    let (group, next) = group_end(bytes, end)?;
    let record = RecordView {
        table,
        category,
        attrs: &bytes[start..end],
        group,
        single,
    };
    Some((record, next))
}

/// `text.clone()`, inlined (a borrowed text is the usual case and costs a copy of the
/// reference; wasm guests pay for every call).
#[inline(always)]
fn copy<'a>(text: &Cow<'a, str>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s),
        Cow::Owned(s) => Cow::Owned(s.clone()),
    }
}

/// `,"group":false}` or `,"group":true}` at `at`: the flag and the index after it.
#[inline(always)]
fn group_end(bytes: &[u8], at: usize) -> Option<(bool, usize)> {
    match literal(bytes, at, b",\"group\":false}") {
        Some(next) => Some((false, next)),
        None => Some((true, literal(bytes, at, b",\"group\":true}")?)),
    }
}

/// One record at `at` as [`Record`](crate::Record) reads it: `table` and `category` strings,
/// `attrs` an object, `group` a boolean, unknown fields ignored, none repeated.
fn record(bytes: &[u8], at: usize) -> Option<(RecordView<'_>, usize)> {
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
        single: None,
    };
    Some((record, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EvalInput;
    use serde_json::json;

    /// abi, slot, now and each record's table, category and group.
    type Reading = (
        i32,
        String,
        String,
        Vec<(String, String, bool, Option<String>)>,
    );

    /// What serde reads, in the view's terms, for comparison.
    /// `value` as JSON with the top-level fields in the host's order (records last) and,
    /// with `host_records`, each record's fields too (serde_json's map sorts them).
    fn host_order(value: &serde_json::Value, host_records: bool, pretty: bool) -> String {
        let write = |v: &serde_json::Value| {
            if pretty {
                serde_json::to_string_pretty(v).unwrap()
            } else {
                serde_json::to_string(v).unwrap()
            }
        };
        let mut fields: Vec<String> = ["abi", "slot", "now", "config", "request", "holds"]
            .iter()
            .filter_map(|k| value.get(*k).map(|v| format!("\"{k}\":{}", write(v))))
            .collect();
        let records = value["records"].as_array().unwrap();
        let records: Vec<String> = records
            .iter()
            .map(|r| {
                if !host_records {
                    return write(r);
                }
                let parts: Vec<String> = ["table", "category", "attrs", "group"]
                    .iter()
                    .filter_map(|k| r.get(*k).map(|v| format!("\"{k}\":{}", write(v))))
                    .collect();
                format!("{{{}}}", parts.join(","))
            })
            .collect();
        fields.push(format!("\"records\":[{}]", records.join(",")));
        format!("{{{}}}", fields.join(if pretty { ",\n" } else { "," }))
    }

    fn via_serde(bytes: &[u8]) -> Option<Reading> {
        let input: EvalInput = serde_json::from_slice(bytes).ok()?;
        let records = input
            .records
            .iter()
            .map(|r| {
                let at = r
                    .attrs
                    .get("at")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                (r.table.to_string(), r.category.to_string(), r.group, at)
            })
            .collect();
        Some((input.abi, input.slot, input.now, records))
    }

    fn via_view(bytes: &[u8]) -> Option<Reading> {
        let view = InputView::parse(bytes)?;
        let mut iter = view.records();
        let records = iter
            .by_ref()
            .map(|r| {
                let at = r.attr_str("at").map(|v| v.to_string());
                (r.table.to_string(), r.category.to_string(), r.group, at)
            })
            .collect();
        let finished = iter.finish();
        // The callback form reads the same.
        let mut again = Vec::new();
        let callback = view.try_for_each_record(|r| {
            let at = r.attr_str("at").map(|v| v.to_string());
            again.push((r.table.to_string(), r.category.to_string(), r.group, at));
            Some(())
        });
        assert_eq!(callback, finished);
        finished?;
        assert_eq!(again, records);
        Some((
            view.abi,
            view.slot.to_string(),
            view.now.to_string(),
            records,
        ))
    }

    #[test]
    fn repeated_records_are_read_like_the_first() {
        let records = json!([
            {"table": "invoices", "category": "invoice", "attrs": {"at": "2024-01-01T00:00:00Z"}, "group": false},
            {"table": "invoices", "category": "invoice", "attrs": {"at": "2024-01-02T00:00:00Z"}, "group": true},
            {"table": "invoices", "category": "invoice", "attrs": {"at": "x\"y"}, "group": false},
            {"table": "invoices", "category": "invoice", "attrs": {"at": null}, "group": false},
            {"table": "invoices", "category": "invoice", "attrs": {"at": "é"}, "group": false},
            {"table": "invoices", "category": "invoice", "attrs": {"at": "a", "b": 1}, "group": false},
            {"table": "invoices", "category": "invoice", "attrs": {"at": "c"}, "group": false},
            {"table": "invoices", "category": "invoices", "attrs": {"at": "d"}, "group": false},
            {"table": "invoices", "category": "invoices", "attrs": {"at": "e"}},
            {"table": "invoices", "category": "invoices", "attrs": {"at": "f"}, "group": false},
            {"table": "invoices", "category": "invoices", "attrs": {"at": "g"}, "group": 1},
        ]);
        for n in 1..=records.as_array().unwrap().len() {
            let mut input = json!({"abi": 1, "slot": "s", "now": "n", "config": {}, "request": {},
                                   "holds": [], "records": records});
            input["records"].as_array_mut().unwrap().truncate(n);
            let text = host_order(&input, true, false).into_bytes();
            let expected = via_serde(&text);
            match via_view(&text) {
                Some(view) => assert_eq!(Some(view), expected, "{n}"),
                None => assert!(n == records.as_array().unwrap().len() && expected.is_none()),
            }
        }
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
        let text = host_order(&base, false, false);
        let pretty = host_order(&base, false, true);
        let host = host_order(&base, true, false);
        for good in [&text, &pretty, &host] {
            let view = via_view(good.as_bytes()).expect("the view reads it");
            assert_eq!(Some(view), via_serde(good.as_bytes()));
        }
        let view = InputView::parse(text.as_bytes()).unwrap();
        let first = view.records().next().unwrap();
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

    /// The hint covers the records when they are alike, or differ in length by a date's
    /// fraction, without going far past them (a quarter at most), and it is never zero.
    #[test]
    fn records_hint_covers_records_of_one_shape() {
        let dates = [
            |i: usize| format!("20{:02}-01-01T00:00:00Z", i % 100),
            // The first date has six digits of fraction, no other one has any.
            |i: usize| match i {
                0 => "2020-01-01T00:00:00.123456Z".to_owned(),
                _ => "2020-01-01T00:00:00Z".to_owned(),
            },
            // The first date has no fraction, every other one six digits.
            |i: usize| match i {
                0 => "2020-01-01T00:00:00Z".to_owned(),
                _ => format!("2020-01-01T00:00:00.{:06}Z", 100_000 + i % 900_000),
            },
        ];
        for date in dates {
            for n in [0usize, 1, 2, 7, 5000] {
                let records: Vec<serde_json::Value> = (0..n)
                    .map(|i| {
                        json!({"table": "invoices", "category": "invoice",
                               "attrs": {"issued_at": date(i)}, "group": false})
                    })
                    .collect();
                let value = json!({"abi": 1, "slot": "retention", "now": "2025-01-01T00:00:00Z",
                                   "config": null, "request": {}, "holds": [], "records": records});
                let text = host_order(&value, true, false);
                let hint = InputView::parse(text.as_bytes()).unwrap().records_hint();
                assert!(
                    hint >= n.max(1) && hint <= n + n / 4 + 2,
                    "{n} records, hint {hint}"
                );
            }
        }
    }
}
