//! The input JSON, written by hand: byte for byte what `serde_json::to_vec(&EvalInput)`
//! writes (a test checks that), without serde's per-value dispatch.

use erasure_abi::json::{bytes_eq, write_str};
use erasure_abi::{EvalInput, Hold, Record};
use serde_json::Value;
use std::sync::Arc;

/// `serde_json::to_vec(input)`, faster.
pub(crate) fn encode_input(input: &EvalInput) -> Vec<u8> {
    // Records dominate; size the buffer once so it never reallocates in the usual case.
    let per_record: usize = input.records.first().map_or(0, |r| {
        64 + r.table.len() + r.category.len() + 48 * r.attrs.len()
    });
    let mut out = Vec::with_capacity(256 + input.records.len() * per_record);
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
    let mut memo = Memo::default();
    for (i, record) in input.records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_record(&mut out, record, &mut memo);
    }
    out.extend_from_slice(b"]}");
    out
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

/// The records of one call mostly repeat their table, category and attribute names; their
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

fn write_record(out: &mut Vec<u8>, record: &Record, memo: &mut Memo) {
    match &memo.head {
        Some((table, category, head))
            if same_text(table, &record.table) && same_text(category, &record.category) =>
        {
            out.extend_from_slice(head);
        }
        _ => {
            let mut head = b"{\"table\":".to_vec();
            write_str(&mut head, &record.table);
            head.extend_from_slice(b",\"category\":");
            write_str(&mut head, &record.category);
            head.extend_from_slice(b",\"attrs\":{");
            out.extend_from_slice(&head);
            memo.head = Some((
                Arc::clone(&record.table),
                Arc::clone(&record.category),
                head,
            ));
        }
    }
    for (i, (key, value)) in record.attrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match memo
            .keys
            .iter()
            .find(|(k, _)| bytes_eq(k.as_bytes(), key.as_bytes()))
        {
            Some((_, json)) => out.extend_from_slice(json),
            None => {
                let mut json = Vec::new();
                write_str(&mut json, key);
                json.push(b':');
                out.extend_from_slice(&json);
                if memo.keys.len() < MAX_KEYS {
                    memo.keys.push((key.clone(), json));
                }
            }
        }
        write_value(out, value);
    }
    out.extend_from_slice(if record.group {
        b"},\"group\":true}"
    } else {
        b"},\"group\":false}"
    });
}

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
