//! Minimal UTC time arithmetic for rule modules.
//!
//! Written here instead of pulling in chrono/time so a guest module stays
//! small. Only what retention rules need: parse RFC 3339, print it in one
//! canonical form, and add calendar periods (`P7Y`, `P12M`, `P30D`).
//! Years are limited to 0000..=9999, the range RFC 3339 can express.

use std::fmt;
use std::str::FromStr;

use crate::AbiError;

const SECS_PER_DAY: i64 = 86_400;
const MAX_YEAR: i64 = 9999;
/// Days from 0001-01-01 to 1970-01-01 in the proleptic Gregorian calendar.
const EPOCH_DAYS: i64 = 719_162;
/// Cumulative days before each month in a common year.
const DAYS_BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// Whether `year` has a 29 February (proleptic Gregorian).
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in `month` (1..=12) of `year`; 0 for an invalid month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 0001-01-01 to 1 January of `year` (negative before year 1).
fn days_before_year(year: i64) -> i64 {
    let y = year - 1;
    365 * y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400)
}

/// Days since 1970-01-01 of a valid civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let mut days =
        days_before_year(year) + DAYS_BEFORE_MONTH[(month - 1) as usize] + i64::from(day) - 1;
    if month > 2 && is_leap_year(year) {
        days += 1;
    }
    days - EPOCH_DAYS
}

/// Inverse of [`days_from_civil`]: (year, month, day) of a day number.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Closed form, no loops: count in 400-year cycles (146 097 days) of years that start on
    // 1 March, so the leap day is the last day of a year; then shift back to January.
    let shifted = days + 719_468; // days from 0000-03-01
    let cycle = shifted.div_euclid(146_097);
    // Within a cycle in u32: no sign corrections, narrower multiplications for the divisions.
    let day_of_cycle = shifted.rem_euclid(146_097) as u32;
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months from March, each 153-day block holding five months of 31/30 days.
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = cycle * 400 + i64::from(year_of_cycle) + i64::from(month <= 2);
    (year, month, day)
}

/// An instant in UTC, as whole seconds since 1970-01-01T00:00:00Z.
///
/// Leap seconds are ignored, as in Unix time; fractional seconds are
/// truncated when parsing, since retention periods are counted in days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Wraps Unix seconds.
    pub fn from_unix_seconds(secs: i64) -> Self {
        Timestamp(secs)
    }

    /// Unix seconds.
    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)`.
    ///
    /// Accepts `t` or a space for `T` and `z` for `Z` (RFC 3339 §5.6 allows
    /// both); everything else is rejected rather than guessed.
    pub fn parse_rfc3339(text: &str) -> Result<Self, AbiError> {
        let bad = || AbiError::BadTimestamp(truncate_for_error(text));
        let b = text.as_bytes();
        if b.len() < 20 || b.len() > 64 {
            return Err(bad());
        }
        let num = |from: usize, len: usize| -> Option<i64> {
            let digits = b.get(from..from + len)?;
            digits.iter().try_fold(0i64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        let sep_ok = b[4] == b'-'
            && b[7] == b'-'
            && matches!(b[10], b'T' | b't' | b' ')
            && b[13] == b':'
            && b[16] == b':';
        if !sep_ok {
            return Err(bad());
        }
        let year = num(0, 4).ok_or_else(bad)?;
        let month = num(5, 2).ok_or_else(bad)? as u32;
        let day = num(8, 2).ok_or_else(bad)? as u32;
        let hour = num(11, 2).ok_or_else(bad)?;
        let minute = num(14, 2).ok_or_else(bad)?;
        let second = num(17, 2).ok_or_else(bad)?;
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(bad());
        }

        let mut i = 19;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
        }
        let offset = match b.get(i..) {
            Some([b'Z' | b'z']) => 0,
            Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
                let oh = num(i + 1, 2).ok_or_else(bad)?;
                let om = num(i + 4, 2).ok_or_else(bad)?;
                if oh > 23 || om > 59 {
                    return Err(bad());
                }
                let secs = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -secs
                } else {
                    secs
                }
            }
            _ => return Err(bad()),
        };
        let local =
            days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
        Ok(Timestamp(local - offset))
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SSZ`, the only form the host stores.
    pub fn to_rfc3339(self) -> String {
        if let Some(text) = self.rfc3339_bytes() {
            // ASCII digits and separators only.
            return String::from_utf8(text.to_vec()).expect("ASCII");
        }
        let (year, month, day) = civil_from_days(self.0.div_euclid(SECS_PER_DAY));
        let secs = self.0.rem_euclid(SECS_PER_DAY);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    /// [`to_rfc3339`](Self::to_rfc3339) as fixed-size bytes, without allocating; `None`
    /// outside the years 0000..=9999 (where `to_rfc3339` has no fixed width).
    pub fn rfc3339_bytes(self) -> Option<[u8; 20]> {
        let (year, month, day) = civil_from_days(self.0.div_euclid(SECS_PER_DAY));
        let secs = self.0.rem_euclid(SECS_PER_DAY) as u32;
        if !(0..=MAX_YEAR).contains(&year) {
            return None;
        }
        Some(format_civil(
            year as u32,
            month,
            day,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
        ))
    }

    /// Adds a calendar period: years and months first, clamping the day to
    /// the end of the target month (29 Feb + 1 year = 28 Feb), then days.
    /// The time of day is kept. Fails past year 9999.
    pub fn add_period(self, period: &Period) -> Result<Self, AbiError> {
        let day_number = self.0.div_euclid(SECS_PER_DAY);
        let time_of_day = self.0.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(day_number);
        let months = year * 12
            + i64::from(month - 1)
            + i64::from(period.years) * 12
            + i64::from(period.months);
        let (new_year, new_month) = (months.div_euclid(12), (months.rem_euclid(12) + 1) as u32);
        if new_year > MAX_YEAR {
            return Err(AbiError::TimestampOutOfRange);
        }
        let new_day = day.min(days_in_month(new_year, new_month));
        let result_days = days_from_civil(new_year, new_month, new_day) + i64::from(period.days);
        // Day numbers grow with the date: past 9999-12-31 is past the year 9999.
        if result_days > days_from_civil(MAX_YEAR, 12, 31) {
            return Err(AbiError::TimestampOutOfRange);
        }
        Ok(Timestamp(result_days * SECS_PER_DAY + time_of_day))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = AbiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(s)
    }
}

/// How the host writes an instant with microseconds for rule modules (a `timestamptz`
/// attribute): [`Timestamp::to_rfc3339`] of its second, in UTC whatever the session's time
/// zone, with the fraction before the `Z` when it is not zero, without trailing zeros (as
/// PostgreSQL writes fractions): `2024-01-15T09:30:00.3884Z`.
pub fn format_utc_micros(unix_micros: i64) -> String {
    // Room for the longest fraction, so it never reallocates.
    let mut text = Vec::with_capacity(27);
    write_utc_micros(&mut text, unix_micros);
    String::from_utf8(text).expect("ASCII digits and separators")
}

/// [`format_utc_micros`] appended to `out`: the extension writes one per attribute per row
/// into its batch of records.
pub fn write_utc_micros(out: &mut Vec<u8>, unix_micros: i64) {
    // Digits by hand, not `format!` (about a sixth of the time).
    let second = Timestamp(unix_micros.div_euclid(1_000_000));
    match second.rfc3339_bytes() {
        Some(bytes) => out.extend_from_slice(&bytes),
        None => out.extend_from_slice(second.to_rfc3339().as_bytes()),
    }
    let micros = unix_micros.rem_euclid(1_000_000) as u32;
    if micros != 0 {
        // `.` and six digits, two at a time, trailing zeros dropped, then the `Z` again.
        let mut fraction = [b'.', 0, 0, 0, 0, 0, 0, b'Z'];
        fraction[1..3].copy_from_slice(&two_digits(micros / 10_000));
        fraction[3..5].copy_from_slice(&two_digits(micros / 100 % 100));
        fraction[5..7].copy_from_slice(&two_digits(micros % 100));
        let mut len = 7;
        while fraction[len - 1] == b'0' {
            len -= 1;
        }
        fraction[len] = b'Z';
        out.pop(); // the `Z`, written again after the fraction
        out.extend_from_slice(&fraction[..len + 1]);
    }
}

/// The last two decimal digits of `value`, in ASCII.
#[inline(always)]
pub fn two_digits(value: u32) -> [u8; 2] {
    // One load from a table of "00".."99" instead of a division and two additions per pair.
    let at = (value % 100) as usize * 2;
    [DIGIT_PAIRS[at], DIGIT_PAIRS[at + 1]]
}

/// `00`, `01`, … `99`, back to back.
static DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// `YYYY-MM-DDTHH:MM:SSZ` of calendar fields (year 0..=9999, the others in range).
#[inline(always)]
pub fn format_civil(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> [u8; 20] {
    let two = two_digits;
    let (y1, y2) = (two(year / 100), two(year % 100));
    let (mo, d, h, mi, s) = (two(month), two(day), two(hour), two(minute), two(second));
    [
        y1[0], y1[1], y2[0], y2[1], b'-', mo[0], mo[1], b'-', d[0], d[1], b'T', h[0], h[1], b':',
        mi[0], mi[1], b':', s[0], s[1], b'Z',
    ]
}

/// A calendar period in the ISO 8601 `PnYnMnWnD` form (weeks become days).
///
/// Time components (`PT12H`) are rejected: retention law counts dates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    pub years: u32,
    pub months: u32,
    pub days: u32,
}

impl Period {
    /// Parses `P7Y`, `P12M`, `P30D`, `P1Y6M`, `P2W`, ...
    pub fn parse(text: &str) -> Result<Self, AbiError> {
        let bad = || AbiError::BadPeriod(truncate_for_error(text));
        let rest = text.strip_prefix('P').ok_or_else(bad)?;
        if rest.is_empty() {
            return Err(bad());
        }
        let mut period = Period::default();
        // Designators must appear in Y, M, W, D order, each at most once.
        let mut next_allowed = 0;
        let mut chars = rest.char_indices().peekable();
        while chars.peek().is_some() {
            let mut value: u32 = 0;
            let mut digits = 0;
            while let Some(&(_, c)) = chars.peek() {
                let Some(d) = c.to_digit(10) else { break };
                digits += 1;
                // Six digits is far beyond any legal period and cannot overflow.
                if digits > 6 {
                    return Err(bad());
                }
                value = value * 10 + d;
                chars.next();
            }
            let Some((_, designator)) = chars.next() else {
                return Err(bad());
            };
            let rank = match designator {
                'Y' => 0,
                'M' => 1,
                'W' => 2,
                'D' => 3,
                _ => return Err(bad()),
            };
            if digits == 0 || rank < next_allowed {
                return Err(bad());
            }
            next_allowed = rank + 1;
            match rank {
                0 => period.years = value,
                1 => period.months = value,
                2 => period.days += value * 7,
                _ => period.days += value,
            }
        }
        Ok(period)
    }
}

impl FromStr for Period {
    type Err = AbiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Period::parse(s)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P")?;
        if self.years > 0 {
            write!(f, "{}Y", self.years)?;
        }
        if self.months > 0 {
            write!(f, "{}M", self.months)?;
        }
        if self.days > 0 || (self.years == 0 && self.months == 0) {
            write!(f, "{}D", self.days)?;
        }
        Ok(())
    }
}

/// Keeps error messages bounded when a module sends garbage.
fn truncate_for_error(text: &str) -> String {
    crate::truncate_utf8(text, 80).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn period(s: &str) -> Period {
        Period::parse(s).unwrap()
    }

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(ts("1970-01-01T00:00:00Z").0, 0);
        assert_eq!(ts("2000-03-01T00:00:00Z").0, 951_868_800);
        assert_eq!(ts("2024-02-29T12:34:56Z").0, 1_709_210_096);
        assert_eq!(ts("1969-12-31T23:59:59Z").0, -1);
        assert_eq!(ts("0000-01-01T00:00:00Z").0, -62_167_219_200);
        assert_eq!(ts("9999-12-31T23:59:59Z").0, 253_402_300_799);
    }

    /// The former loop-based `civil_from_days`, as the reference for the closed form.
    fn civil_from_days_by_search(days: i64) -> (i64, u32, u32) {
        let n = days + EPOCH_DAYS;
        let mut year = (n * 400).div_euclid(146_097) + 1;
        while days_before_year(year) > n {
            year -= 1;
        }
        while days_before_year(year + 1) <= n {
            year += 1;
        }
        let mut day_of_year = n - days_before_year(year);
        let mut month = 1;
        loop {
            let len = i64::from(days_in_month(year, month));
            if day_of_year < len || month == 12 {
                return (year, month, (day_of_year + 1) as u32);
            }
            day_of_year -= len;
            month += 1;
        }
    }

    #[test]
    fn closed_form_civil_from_days_matches_the_search() {
        // Years -800 to 10 400, every day.
        for d in -1_000_000..3_100_000 {
            assert_eq!(civil_from_days(d), civil_from_days_by_search(d), "day {d}");
        }
    }

    #[test]
    fn round_trip_through_every_day_of_four_centuries() {
        // 1900..2300 covers non-leap centuries and a leap one (2000).
        let start = days_from_civil(1900, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        let mut expected = (1900, 1, 1);
        for d in start..end {
            assert_eq!(civil_from_days(d), expected, "day {d}");
            assert_eq!(days_from_civil(expected.0, expected.1, expected.2), d);
            let (y, m, day) = expected;
            expected = if day < days_in_month(y, m) {
                (y, m, day + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn formats_canonically() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(ts(s).to_rfc3339(), s);
            assert_eq!(ts(s).to_string(), s);
        }
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn offsets_and_fractions_normalise_to_utc() {
        assert_eq!(
            ts("2024-01-01T01:30:00+01:30").to_rfc3339(),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            ts("2023-12-31T19:00:00-05:00").to_rfc3339(),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(ts("2024-01-01T00:00:00-00:00"), ts("2024-01-01T00:00:00Z"));
        assert_eq!(
            ts("2024-01-01T00:00:00.999999Z"),
            ts("2024-01-01T00:00:00Z")
        );
        assert_eq!(ts("2024-01-01t00:00:00.5z"), ts("2024-01-01T00:00:00Z"));
        assert_eq!(ts("2024-01-01 00:00:00+00:00"), ts("2024-01-01T00:00:00Z"));
        // An offset can move the instant into the previous year.
        assert_eq!(
            ts("2024-01-01T00:00:00+14:00").to_rfc3339(),
            "2023-12-31T10:00:00Z"
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for s in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+01",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00ZZ",
            "2024/01/01T00:00:00Z",
            "+2024-01-01T00:00:00Z",
            "２０２４-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z ",
        ] {
            assert!(
                matches!(Timestamp::parse_rfc3339(s), Err(AbiError::BadTimestamp(_))),
                "accepted {s:?}"
            );
        }
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2024));
        assert!(is_leap_year(2000));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2023));
        assert!(!is_leap_year(2100));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert!(Timestamp::parse_rfc3339("2000-02-29T00:00:00Z").is_ok());
        assert!(Timestamp::parse_rfc3339("1900-02-29T00:00:00Z").is_err());
    }

    #[test]
    fn parses_periods() {
        assert_eq!(
            period("P7Y"),
            Period {
                years: 7,
                months: 0,
                days: 0
            }
        );
        assert_eq!(
            period("P12M"),
            Period {
                years: 0,
                months: 12,
                days: 0
            }
        );
        assert_eq!(
            period("P30D"),
            Period {
                years: 0,
                months: 0,
                days: 30
            }
        );
        assert_eq!(
            period("P1Y6M"),
            Period {
                years: 1,
                months: 6,
                days: 0
            }
        );
        assert_eq!(
            period("P1Y2M3D"),
            Period {
                years: 1,
                months: 2,
                days: 3
            }
        );
        assert_eq!(
            period("P2W"),
            Period {
                years: 0,
                months: 0,
                days: 14
            }
        );
        assert_eq!(period("P0D"), Period::default());
        assert_eq!(period("P1Y6M").to_string(), "P1Y6M");
        assert_eq!(Period::default().to_string(), "P0D");
        for bad in [
            "",
            "P",
            "7Y",
            "P7",
            "PY",
            "P7Y7Y",
            "P6M1Y",
            "PT1H",
            "P1Y T",
            "p7y",
            "P-1Y",
            "P1.5Y",
            "P9999999Y",
            "P1YX",
        ] {
            assert!(
                matches!(Period::parse(bad), Err(AbiError::BadPeriod(_))),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn adds_periods_with_month_end_clamping() {
        let add = |t: &str, p: &str| ts(t).add_period(&period(p)).unwrap().to_rfc3339();
        assert_eq!(add("2024-02-29T10:00:00Z", "P1Y"), "2025-02-28T10:00:00Z");
        assert_eq!(add("2024-02-29T10:00:00Z", "P4Y"), "2028-02-29T10:00:00Z");
        assert_eq!(add("2024-01-31T00:00:00Z", "P1M"), "2024-02-29T00:00:00Z");
        assert_eq!(add("2023-01-31T00:00:00Z", "P1M"), "2023-02-28T00:00:00Z");
        assert_eq!(add("2024-08-31T00:00:00Z", "P1Y6M"), "2026-02-28T00:00:00Z");
        assert_eq!(add("2024-11-15T08:00:00Z", "P12M"), "2025-11-15T08:00:00Z");
        assert_eq!(add("2024-12-31T23:59:59Z", "P1D"), "2025-01-01T23:59:59Z");
        assert_eq!(add("2024-02-28T00:00:00Z", "P1D"), "2024-02-29T00:00:00Z");
        assert_eq!(add("2024-01-15T00:00:00Z", "P7Y"), "2031-01-15T00:00:00Z");
        // Months are added before days, as ISO 8601 and PostgreSQL do.
        assert_eq!(add("2024-01-31T00:00:00Z", "P1M1D"), "2024-03-01T00:00:00Z");
        assert_eq!(add("1969-12-31T00:00:00Z", "P2D"), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn refuses_to_leave_year_9999() {
        let end = ts("9999-06-01T00:00:00Z");
        assert_eq!(
            end.add_period(&period("P1Y")),
            Err(AbiError::TimestampOutOfRange)
        );
        assert_eq!(
            end.add_period(&period("P365D")),
            Err(AbiError::TimestampOutOfRange)
        );
        assert!(end.add_period(&period("P6M")).is_ok());
    }

    #[test]
    fn formats_microseconds_in_utc_as_postgresql_writes_fractions() {
        // (second, microseconds, text): PostgreSQL wrote these instants so
        // (`to_json(t AT TIME ZONE 'UTC')`, with a `Z`).
        for (second, micros, text) in [
            ("2019-03-04T10:00:00Z", 0, "2019-03-04T10:00:00Z"),
            ("2019-03-04T10:00:00Z", 123_400, "2019-03-04T10:00:00.1234Z"),
            ("2019-03-04T10:00:00Z", 1, "2019-03-04T10:00:00.000001Z"),
            (
                "1969-12-31T23:59:59Z",
                999_999,
                "1969-12-31T23:59:59.999999Z",
            ),
            ("0001-01-01T00:00:00Z", 0, "0001-01-01T00:00:00Z"),
        ] {
            let formatted = format_utc_micros(ts(second).unix_seconds() * 1_000_000 + micros);
            assert_eq!(formatted, text);
            // What the parser reads back: the second, the fraction truncated.
            assert_eq!(ts(&formatted), ts(second));
        }
    }

    /// The hand-written digits agree with `format!` on every fraction length and outside
    /// the years 0000..=9999, where the second is written by `to_rfc3339`'s other branch.
    #[test]
    fn utc_micros_digits_agree_with_format() {
        let by_format = |unix_micros: i64| {
            let mut text = Timestamp(unix_micros.div_euclid(1_000_000)).to_rfc3339();
            let micros = unix_micros.rem_euclid(1_000_000);
            if micros != 0 {
                let fraction = format!(".{micros:06}");
                text.insert_str(text.len() - 1, fraction.trim_end_matches('0'));
            }
            text
        };
        let seconds = [
            0,
            -1,
            1_764_000_000,
            253_402_300_799,     // 9999-12-31T23:59:59Z
            253_402_300_800,     // year 10000
            -62_167_219_200 - 1, // the second before 0000-01-01
            -62_135_596_800 + 7, // 0001-01-01T00:00:07Z
        ];
        let fractions = [
            0, 1, 10, 100_000, 120_000, 123_456, 999_999, 500_000, 104_736,
        ];
        for second in seconds {
            for fraction in fractions {
                let micros = second * 1_000_000 + fraction;
                assert_eq!(format_utc_micros(micros), by_format(micros), "{micros}");
            }
        }
    }
}
