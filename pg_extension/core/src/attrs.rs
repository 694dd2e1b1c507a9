//! How a row's attributes (the columns the data map lists under `attrs`) reach the rules.
//!
//! A `timestamptz` attribute is read as its own column and written in UTC
//! ([`erasure_abi::format_utc_micros`]), so modules get the same text whatever the caller's `TimeZone`
//! and their calendar shortcut applies; PostgreSQL's JSON would write it in the session's
//! zone (`+05:30`); reading the column also skips building, printing and parsing a `jsonb`
//! per row. Every other attribute comes in one `jsonb` object, as PostgreSQL writes it.

use erasure_abi::write_utc_micros;

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

/// A `timestamptz` attribute's value for the rules, from PostgreSQL's microseconds, appended
/// to `out` without quotes: UTC text, or `infinity` / `-infinity` as PostgreSQL's JSON writes
/// those (ASCII digits and separators, which a JSON string holds as they are).
pub fn write_timestamptz(out: &mut Vec<u8>, postgres_micros: i64) {
    match postgres_micros {
        i64::MAX => out.extend_from_slice(b"infinity"),
        i64::MIN => out.extend_from_slice(b"-infinity"),
        // Within PostgreSQL's range (4713 BC to 294276 AD) the sum cannot overflow.
        micros => write_utc_micros(out, micros.saturating_add(POSTGRES_EPOCH_UNIX_MICROS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamptz_values_are_utc_text_or_infinities() {
        let timestamptz_value = |micros| {
            let mut out = Vec::new();
            write_timestamptz(&mut out, micros);
            String::from_utf8(out).unwrap()
        };
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
