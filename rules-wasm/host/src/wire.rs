//! The input JSON, written by hand: byte for byte what `serde_json::to_vec(&EvalInput)`
//! writes (a test checks that), without serde's per-value dispatch.

use erasure_abi::json::{bytes_eq, write_str};
use erasure_abi::{write_utc_micros, EvalInput, Hold, Record};
use serde_json::Value;
use std::sync::Arc;

/// `serde_json::to_vec(input)` with `records` in place of `input.records`, faster.
#[cfg(test)]
pub(crate) fn encode_input(input: &EvalInput, records: &RecordBatch) -> Vec<u8> {
    let (mut out, tail) = encode_input_around(input);
    out.extend_from_slice(&records.json);
    out.extend_from_slice(tail);
    out
}

/// The input's JSON before its records and after them.
pub(crate) fn encode_input_around(input: &EvalInput) -> (Vec<u8>, &'static [u8]) {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"abi\":");
    out.extend_from_slice(input.abi.to_string().as_bytes());
    out.extend_from_slice(b",\"slot\":");
    write_str(&mut out, &input.slot);
    out.extend_from_slice(b",\"now\":");
    write_str(&mut out, &input.now);
    out.extend_from_slice(b",\"config\":");
    write_value(&mut out, &input.config);
    out.extend_from_slice(b",\"request\":");
    write_value(&mut out, &input.request);
    out.extend_from_slice(b",\"holds\":[");
    for (i, hold) in input.holds.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_hold(&mut out, hold);
    }
    out.extend_from_slice(b"],\"records\":[");
    (out, b"]}")
}

/// The records of one call, written as the JSON the module reads as they are made, each
/// exactly as `serde_json` writes a [`Record`]. The extension writes a row's attributes
/// straight from its columns: no map per record, and the batch is one compact buffer that
/// every module of the call is given a copy of (a map per record took about 800 bytes in
/// scattered tree nodes and strings, and reading them back was most of the host's cost).
#[derive(Default)]
pub struct RecordBatch {
    /// The records' JSON, separated by commas, without the enclosing brackets.
    pub(crate) json: Vec<u8>,
    /// Where each record's JSON ends in `json`.
    ends: Vec<usize>,
    memo: Memo,
}

impl RecordBatch {
    /// An empty batch with room for `records` records of `table` and `category` with `attrs`
    /// attributes each (about 64 bytes of JSON besides the names, and 48 per attribute).
    pub fn with_room(records: usize, table: &str, category: &str, attrs: usize) -> RecordBatch {
        let bytes_each = 64 + table.len() + category.len() + 48 * attrs;
        RecordBatch {
            json: Vec::with_capacity(records * (bytes_each + 1)),
            ends: Vec::with_capacity(records),
            memo: Memo::default(),
        }
    }

    /// A batch of `records`, in order.
    pub fn of(records: &[Record]) -> RecordBatch {
        let mut batch = records.first().map_or_else(RecordBatch::default, |r| {
            RecordBatch::with_room(records.len(), &r.table, &r.category, r.attrs.len())
        });
        for record in records {
            batch.push(record);
        }
        batch
    }

    /// Invoices issued at `issued` (Unix microseconds), written as the extension writes a row's
    /// `timestamptz` attribute: with [`Record::invoice_issued_micros`], the records of
    /// [`Record::invoice_batch`] (`make bench`'s rule-evaluation workload).
    pub fn invoices(issued: &[i64]) -> RecordBatch {
        let (table, category): (Arc<str>, Arc<str>) = ("invoices".into(), "invoice".into());
        let mut batch = RecordBatch::with_room(issued.len(), &table, &category, 1);
        for &issued in issued {
            batch.push_with(&table, &category, false, |attrs| {
                attrs.plain_str("issued_at", |out| write_utc_micros(out, issued));
            });
        }
        batch
    }

    /// Adds `record`.
    pub fn push(&mut self, record: &Record) {
        self.push_with(&record.table, &record.category, record.group, |attrs| {
            for (name, value) in &record.attrs {
                attrs.value(name, value);
            }
        });
    }

    /// Adds a record of `table` and `category` whose attributes `write` writes, each name
    /// once.
    pub fn push_with(
        &mut self,
        table: &Arc<str>,
        category: &Arc<str>,
        group: bool,
        write: impl FnOnce(&mut AttrWriter<'_>),
    ) {
        let out = &mut self.json;
        if !self.ends.is_empty() {
            out.push(b',');
        }
        match &self.memo.head {
            Some((t, c, head)) if same_text(t, table) && same_text(c, category) => {
                out.extend_from_slice(head);
            }
            _ => {
                let mut head = b"{\"table\":".to_vec();
                write_str(&mut head, table);
                head.extend_from_slice(b",\"category\":");
                write_str(&mut head, category);
                head.extend_from_slice(b",\"attrs\":{");
                out.extend_from_slice(&head);
                self.memo.head = Some((Arc::clone(table), Arc::clone(category), head));
            }
        }
        write(&mut AttrWriter {
            out,
            keys: &mut self.memo.keys,
            written: 0,
        });
        out.extend_from_slice(if group {
            b"},\"group\":true}"
        } else {
            b"},\"group\":false}"
        });
        self.ends.push(out.len());
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th record's JSON.
    pub fn record_json(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] + 1,
        };
        std::str::from_utf8(&self.json[start..self.ends[i]]).expect("written from UTF-8 text")
    }
}

/// Writes one record's attributes (see [`RecordBatch::push_with`]).
pub struct AttrWriter<'a> {
    out: &'a mut Vec<u8>,
    keys: &'a mut Vec<(String, Vec<u8>)>,
    written: usize,
}

impl AttrWriter<'_> {
    /// The attribute `name` with a JSON value.
    pub fn value(&mut self, name: &str, value: &Value) {
        self.name(name);
        write_value(self.out, value);
    }

    /// The attribute `name` with a string value that `text` writes, which must need no
    /// escaping (ASCII letters, digits and punctuation other than `"` and `\`).
    pub fn plain_str(&mut self, name: &str, text: impl FnOnce(&mut Vec<u8>)) {
        self.name(name);
        self.out.push(b'"');
        let from = self.out.len();
        text(self.out);
        debug_assert!(self.out[from..]
            .iter()
            .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\'));
        self.out.push(b'"');
    }

    fn name(&mut self, name: &str) {
        if self.written > 0 {
            self.out.push(b',');
        }
        self.written += 1;
        match self
            .keys
            .iter()
            .find(|(k, _)| bytes_eq(k.as_bytes(), name.as_bytes()))
        {
            Some((_, json)) => self.out.extend_from_slice(json),
            None => {
                let mut json = Vec::new();
                write_str(&mut json, name);
                json.push(b':');
                self.out.extend_from_slice(&json);
                if self.keys.len() < MAX_KEYS {
                    self.keys.push((name.to_owned(), json));
                }
            }
        }
    }
}

fn write_hold(out: &mut Vec<u8>, hold: &Hold) {
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(hold.id.to_string().as_bytes());
    out.extend_from_slice(b",\"case\":");
    write_str(out, &hold.case);
    if let Some(categories) = &hold.categories {
        out.extend_from_slice(b",\"categories\":");
        write_array(out, categories, |out, category| write_str(out, category));
    }
    if let Some(expires_at) = &hold.expires_at {
        out.extend_from_slice(b",\"expires_at\":");
        write_str(out, expires_at);
    }
    out.push(b'}');
}

/// The records of one batch mostly repeat their table, category and attribute names; their
/// JSON is written once and copied after.
#[derive(Default)]
struct Memo {
    /// Table and category of the last record, and its JSON up to the attributes.
    head: Option<(Arc<str>, Arc<str>, Vec<u8>)>,
    /// Attribute names seen and their JSON (with the colon).
    keys: Vec<(String, Vec<u8>)>,
}

/// Attribute names remembered per call; more distinct ones are written each time.
const MAX_KEYS: usize = 16;

/// Equal texts; the usual case, one shared text, is known without reading it.
#[inline(always)]
fn same_text(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || bytes_eq(a.as_bytes(), b.as_bytes())
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => write_str(out, s),
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, value);
            }
            out.push(b'}');
        }
        Value::Array(items) => write_array(out, items, write_value),
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Exactly as serde_json writes numbers; writing to a Vec cannot fail.
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("writes to a Vec"),
    }
}

/// `[a,b,…]`, each item written by `each`.
fn write_array<'a, T: 'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = &'a T>,
    mut each: impl FnMut(&mut Vec<u8>, &'a T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}
