//! How a row's attributes (the columns the data map lists under `attrs`) reach the rules.
//!
//! A `timestamptz` attribute is read as its own column and written in UTC
//! ([`format_utc_micros`]), so modules get the same text whatever the caller's `TimeZone`
//! and their calendar shortcut applies; PostgreSQL's JSON would write it in the session's
//! zone (`+05:30`); reading the column also skips building, printing and parsing a `jsonb`
//! per row. Every other attribute comes in one `jsonb` object, as PostgreSQL writes it.

use erasure_abi::format_utc_micros;
use serde_json::Value;

use crate::datamap::DataMap;

/// The catalog's name for the type read as its own column.
const TIMESTAMPTZ: &str = "timestamp with time zone";

/// PostgreSQL's `timestamptz` counts microseconds from 2000-01-01; this is that instant in
/// Unix microseconds.
const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A table's attribute columns as an erasure selects them: after the key, one `jsonb` object
/// of the [`json`](Self::json) attributes (only when there are any), then each of the
/// [`utc`](Self::utc) attributes as a column of its own.
#[derive(Debug, PartialEq, Eq)]
pub struct AttrColumns<'a> {
    pub json: Vec<&'a str>,
    pub utc: Vec<&'a str>,
}

impl<'a> AttrColumns<'a> {
    pub fn of(map: &'a DataMap, table: &str) -> AttrColumns<'a> {
        let (utc, json) = map
            .table(table)
            .attrs
            .iter()
            .map(String::as_str)
            .partition(|attr| map.column_type(table, attr) == TIMESTAMPTZ);
        AttrColumns { json, utc }
    }

    /// The 1-based position of the first `utc` column in the selected row.
    pub fn first_utc_column(&self) -> usize {
        if self.json.is_empty() {
            2
        } else {
            3
        }
    }
}

/// A `timestamptz` attribute's value for the rules, from PostgreSQL's microseconds: UTC text,
/// or `infinity` / `-infinity` as PostgreSQL's JSON writes those.
pub fn timestamptz_value(postgres_micros: i64) -> Value {
    let text = match postgres_micros {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        // Within PostgreSQL's range (4713 BC to 294276 AD) the sum cannot overflow.
        micros => format_utc_micros(micros.saturating_add(POSTGRES_EPOCH_UNIX_MICROS)),
    };
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamptz_values_are_utc_text_or_infinities() {
        assert_eq!(timestamptz_value(0), "2000-01-01T00:00:00Z");
        // 2024-01-15 09:30:00.388446 UTC, as PostgreSQL stores it.
        assert_eq!(
            timestamptz_value(758_626_200_388_446),
            "2024-01-15T09:30:00.388446Z"
        );
        assert_eq!(timestamptz_value(-1), "1999-12-31T23:59:59.999999Z");
        assert_eq!(timestamptz_value(i64::MAX), "infinity");
        assert_eq!(timestamptz_value(i64::MIN), "-infinity");
    }
}
