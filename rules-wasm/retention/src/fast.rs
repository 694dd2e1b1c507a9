//! The module's fast path: the same decisions as [`evaluate`](crate::evaluate) through the
//! SDK's `run_json`, read from the input without copying it and written straight to the
//! output. It declines (returns `false`) whenever anything is unusual: input the SDK's
//! borrowed view does not handle, a configuration or `now` that does not parse, a record
//! whose retention end fails; the SDK then runs [`evaluate`](crate::evaluate), which gives
//! the answer or the refusal with its message.

use erasure_rules_sdk::erasure_abi::json::{bytes_eq, write_str};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use erasure_rules_sdk::erasure_abi::{civil_from_days, days_in_month, format_civil, two_digits};
use erasure_rules_sdk::view::{literal, object, read_str, skip_ws, InputView};
use erasure_rules_sdk::{Period, Timestamp, ABI_VERSION};

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

    let now_end = PeriodEnd::of(now)?;
    // Each rule's period and the attribute it runs from, when it has both: looked up once
    // here rather than matched on for every record.
    let shortcuts: Vec<Option<(&Period, &str)>> = rules
        .iter()
        .map(|rule| match rule {
            Rule::Retain { period, from, .. }
            | Rule::Anonymize {
                period: Some(period),
                from,
                ..
            } => from.as_deref().map(|from| (period, from)),
            _ => None,
        })
        .collect();

    // Pass 1: decide every record, keeping only what the answer needs: its rule, which
    // answer and the date.
    let hint = view.records_hint();
    let mut outcomes: Vec<(usize, Kind, [u8; 20])> = Vec::with_capacity(hint);
    // Records mostly come in runs of one category.
    let mut last: Option<(Cow<'_, str>, usize)> = None;
    // Read (and check) every record first, then decide: wasm runs these two small loops
    // faster than one loop doing both.
    let mut all = Vec::with_capacity(hint);
    view.try_for_each_record(|record| {
        all.push(record);
        Some(())
    })?;
    all.iter().try_for_each(|record| {
        let index = match &last {
            Some((category, index))
                if bytes_eq(category.as_bytes(), record.category.as_bytes()) =>
            {
                *index
            }
            _ => {
                let index = rule_index(&record.category);
                last = Some((record.category.clone(), index));
                index
            }
        };
        let rule = rules[index];
        // The usual case, on calendar fields: a period of years and months from a UTC date.
        if let Some((period, from)) = shortcuts[index] {
            let text = record.attr_str(from);
            if let Some(end) = text.and_then(|t| end_of_utc_period(&t, period, &now_end)) {
                outcomes.push(match end {
                    Some(date) => (index, Kind::Dated, date),
                    None => (index, Kind::Erase, [0; 20]),
                });
                return Some(());
            }
        }
        let start = |attr: &str| {
            record
                .attr_str(attr)
                .and_then(|s| Timestamp::parse_rfc3339(&s).ok())
        };
        outcomes.push(match rule.outcome(start, now).ok()? {
            Outcome::Erase => (index, Kind::Erase, [0; 20]),
            Outcome::Retain(until) | Outcome::Anonymize(Some(until)) => {
                (index, Kind::Dated, until.rfc3339_bytes()?)
            }
            Outcome::Anonymize(None) => (index, Kind::Undated, [0; 20]),
        });
        Some(())
    })?;

    // Every record read, the input valid to its end: now the answer may be given. The records
    // go first, so the answer can take their memory instead of growing the module's.
    drop(all);

    // Pass 2: the answer, into a buffer of exactly the right size.
    // Only the rules some record uses (a call usually touches one or two).
    let mut used = vec![false; rules.len()];
    for (index, kind, _) in &outcomes {
        used[*index] |= *kind != Kind::Erase;
    }
    let answers: Vec<Option<Answers>> = rules
        .iter()
        .zip(&used)
        .map(|(rule, used)| used.then(|| Answers::new(rule)))
        .collect();
    let erase = Answers::new(&Rule::Erase).undated;
    let answer_len = |(index, kind, _): &(usize, Kind, [u8; 20])| match kind {
        Kind::Erase => erase.len(),
        Kind::Dated => answers[*index].as_ref().map_or(0, |a| a.dated.len()),
        Kind::Undated => answers[*index].as_ref().map_or(0, |a| a.undated.len()),
    };
    let size =
        b"{\"decisions\":[]}".len() + outcomes.iter().map(|o| 1 + answer_len(o)).sum::<usize>();
    out.clear();
    out.reserve_exact(size);
    out.extend_from_slice(b"{\"decisions\":[");
    // Records come in runs with the same answer but for its date. A run's answers are written
    // by doubling: one answer, then copies of everything written so far, then each date. A
    // copy is a host call in wasm (`memory.copy`), so a run of n answers costs log2(n) of
    // them instead of n.
    let mut i = 0;
    while i < outcomes.len() {
        let (index, kind, _) = outcomes[i];
        let run = outcomes[i..]
            .iter()
            .take_while(|(ix, k, _)| *ix == index && *k == kind)
            .count();
        let (answer, date_at): (&[u8], Option<usize>) = match kind {
            Kind::Erase => (&erase, None),
            Kind::Dated => {
                let a = answers[index].as_ref()?;
                (&a.dated, Some(a.date_at))
            }
            Kind::Undated => (&answers[index].as_ref()?.undated, None),
        };
        // Each answer is `,` and its JSON; the output's first has no comma.
        let start = out.len();
        if i > 0 {
            out.push(b',');
        }
        let first = out.len();
        out.extend_from_slice(answer);
        let each = 1 + answer.len();
        if run > 1 {
            let rest = out.len();
            out.push(b',');
            out.extend_from_slice(answer);
            let total = (run - 1) * each;
            while out.len() - rest < total {
                let written = out.len() - rest;
                out.extend_from_within(rest..rest + written.min(total - written));
            }
        }
        if let Some(date_at) = date_at {
            let first_date = first + date_at;
            out[first_date..first_date + 20].copy_from_slice(&outcomes[i].2);
            for (j, (_, _, date)) in outcomes[i + 1..i + run].iter().enumerate() {
                let at = first_date + answer.len() + j * each + 1;
                out[at..at + 20].copy_from_slice(date);
            }
        }
        debug_assert_eq!(out.len() - start, run * each - usize::from(i == 0));
        i += run;
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

/// Which of its rule's answers a record gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Erase,
    /// The rule's answer with a date (retain, or anonymize until).
    Dated,
    /// Anonymize, kept indefinitely.
    Undated,
}

/// An instant as [`end_of_utc_period`] compares a period's end with it: its month (from
/// year 0) and its text in the canonical form, whose bytes from the day on order like the
/// instants within one month.
struct PeriodEnd {
    months: u64,
    text: [u8; 20],
}

impl PeriodEnd {
    fn of(t: Timestamp) -> Option<PeriodEnd> {
        let secs = t.unix_seconds();
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let year = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
        let time = secs.rem_euclid(86_400) as u32;
        Some(PeriodEnd {
            months: months_of(year, month),
            text: format_civil(year, month, day, time / 3600, time / 60 % 60, time % 60),
        })
    }
}

/// Months from year 0 to `month` of `year`.
#[inline(always)]
fn months_of(year: u32, month: u32) -> u64 {
    u64::from(year) * 12 + u64::from(month - 1)
}

/// `Rule::outcome`'s answer for a start date written in UTC (`YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction, then `Z` or `±00:00`) and a period of whole years and months, computed
/// on the calendar fields: `Some(Some(end))` when the period ends after `now`, `Some(None)`
/// when it is over. `None` for every other case (another form or offset, a leap second, days
/// in the period, an end past 9999), which `Rule::outcome` then handles. Within its cases
/// it is the same arithmetic as `Timestamp::add_period`: the date is the UTC date, the time
/// of day is kept, the day is clamped to the end of the target month.
fn end_of_utc_period(text: &str, period: &Period, now: &PeriodEnd) -> Option<Option<[u8; 20]>> {
    let b = text.as_bytes();
    if period.days != 0 || b.len() < 20 || b.len() > 64 {
        return None;
    }
    // The end is the start's canonical text with the year and month moved, and the day
    // clamped when the month is shorter: the time of day is copied, never formatted.
    let mut end = canonical_text(b)?;
    let number = |at: usize| u32::from(end[at] - b'0') * 10 + u32::from(end[at + 1] - b'0');
    let (year, month, day) = (number(0) * 100 + number(2), number(5), number(8));
    // Hours up to 23, minutes and seconds up to 59 (no leap second), read on the digits.
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(i64::from(year), month)
        || (end[11], end[12]) > (b'2', b'3')
        || end[14] > b'5'
        || end[17] > b'5'
    {
        return None;
    }
    let months = months_of(year, month) + u64::from(period.years) * 12 + u64::from(period.months);
    let year = u32::try_from(months / 12).ok().filter(|y| *y <= 9999)?;
    let month = (months % 12) as u32 + 1;
    end[0..2].copy_from_slice(&two_digits(year / 100));
    end[2..4].copy_from_slice(&two_digits(year % 100));
    end[5..7].copy_from_slice(&two_digits(month));
    let last_day = days_in_month(i64::from(year), month);
    if day > last_day {
        end[8..10].copy_from_slice(&two_digits(last_day));
    }
    let after_now = match months.cmp(&now.months) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => end[8..] > now.text[8..],
    };
    Some(after_now.then_some(end))
}

/// `b` as `YYYY-MM-DDTHH:MM:SSZ` (the fraction dropped), when it is written
/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z`, `+00:00` or `-00:00`; `None`
/// otherwise. Only the digits are checked, not the numbers' ranges.
#[inline(always)]
fn canonical_text(b: &[u8]) -> Option<[u8; 20]> {
    // The date and time, checked a word at a time as the canonical form is.
    let mut text = [b'Z'; 20];
    text[..19].copy_from_slice(b.get(..19)?);
    if !is_canonical(&text) {
        return None;
    }
    let zone = match &b[19..] {
        [b'.', fraction @ ..] => {
            // The zone is the last byte when that is `Z`, else the last six; before it, one
            // digit or more. (No zone starts with a digit, so this is where reading digits
            // up to the first other byte would stop too.)
            let zone_len = if fraction.last() == Some(&b'Z') { 1 } else { 6 };
            let digits = fraction.len().checked_sub(zone_len).filter(|n| *n > 0)?;
            if !all_digits(b, 20, 20 + digits) {
                return None;
            }
            &fraction[digits..]
        }
        zone => zone,
    };
    matches!(zone, b"Z" | b"+00:00" | b"-00:00").then_some(text)
}

/// Whether `b[from..to]` (not empty, `to` at least 8) is all ASCII digits, a word at a time:
/// a wasm loop per byte cost as much as the whole date's other checks.
#[inline(always)]
fn all_digits(b: &[u8], from: usize, to: usize) -> bool {
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let mut at = from;
    while at + 8 < to {
        if !digits_at(word(at), !0) {
            return false;
        }
        at += 8;
    }
    // The last one to eight: the word ending at `to`, its lanes before `at` masked out.
    digits_at(word(to - 8), !0 << (8 * (8 - (to - at))))
}

/// Whether each byte of `w` that `mask` selects is an ASCII digit: its high nibble is 3 both
/// before and after adding 6 (a byte above 0xF9 that could carry fails the first test).
#[inline(always)]
fn digits_at(w: u64, mask: u64) -> bool {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    w & HIGH & mask == ZEROS & mask && w.wrapping_add(SIXES & mask) & HIGH & mask == ZEROS & mask
}

/// Whether the 20 bytes are `YYYY-MM-DDTHH:MM:SSZ` with digits where the letters are, by
/// three word loads and masks instead of a loop per field (in wasm that loop was most of a
/// record's cost).
#[inline(always)]
fn is_canonical(b: &[u8; 20]) -> bool {
    let w0 = u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")); // YYYY-MM-
    let w1 = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")); // DDTHH:MM
    let w2 = u64::from(u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"))); // :SSZ
    const DIGITS0: u64 = 0x00FF_FF00_FFFF_FFFF;
    const DIGITS1: u64 = 0xFFFF_00FF_FF00_FFFF;
    const DIGITS2: u64 = 0x00FF_FF00;
    let shape = w0 & 0xFF00_00FF_0000_0000 == 0x2D00_002D_0000_0000 // '-' at 4 and 7
        && w1 & 0x0000_FF00_00FF_0000 == 0x0000_3A00_0054_0000 // 'T' at 10, ':' at 13
        && w2 & 0xFF00_00FF == 0x5A00_003A; // ':' at 16, 'Z' at 19
    shape && digits_at(w0, DIGITS0) && digits_at(w1, DIGITS1) && digits_at(w2, DIGITS2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calendar shortcut agrees with `Timestamp` arithmetic wherever it answers.
    #[test]
    fn utc_period_end_matches_timestamp_arithmetic() {
        let now = Timestamp::parse_rfc3339("2025-06-01T12:00:00Z").unwrap();
        let now_end = PeriodEnd::of(now).unwrap();
        let periods = [
            "P1Y", "P7Y", "P12M", "P13M", "P1Y11M", "P0Y", "P10D", "P8000Y",
        ];
        let mut answered = 0;
        // Every 3rd day from 1995 to 2026, at a few times of day, in several spellings.
        for day in (days_from(1995)..days_from(2026)).step_by(3) {
            for secs in [0, 1, 43_199, 43_200, 43_201, 86_399] {
                let t = Timestamp::from_unix_seconds(day * 86_400 + secs);
                let canonical = t.to_rfc3339();
                let base = &canonical[..19];
                for text in [
                    canonical.clone(),
                    format!("{base}.123456+00:00"),
                    format!("{base}-00:00"),
                    format!("{base}+01:00"),
                ] {
                    for p in periods {
                        let period = Period::parse(p).unwrap();
                        let expected = t
                            .add_period(&period)
                            .ok()
                            .map(|end| (end > now).then(|| end.rfc3339_bytes().unwrap()));
                        if let Some(got) = end_of_utc_period(&text, &period, &now_end) {
                            answered += 1;
                            assert_eq!(Some(got), expected, "{text} {p}");
                        }
                    }
                }
            }
        }
        assert!(answered > 100_000, "{answered}");
    }

    /// Fields out of range are left to `Rule::outcome`, in either spelling.
    #[test]
    fn utc_period_end_declines_fields_out_of_range() {
        let now = PeriodEnd::of(Timestamp::parse_rfc3339("2025-06-01T12:00:00Z").unwrap()).unwrap();
        let period = Period::parse("P7Y").unwrap();
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-00-10T00:00:00Z",
            "2023-13-10T00:00:00Z",
            "2023-01-00T00:00:00Z",
            "2023-01-10T24:00:00Z",
            "2023-01-10T30:00:00Z",
            "2023-01-10T12:60:00Z",
            "2023-01-10T12:00:60Z",
            "2023-01-10T12:00:60.5+00:00",
            "2023-01-10T24:00:00-00:00",
        ] {
            assert_eq!(end_of_utc_period(bad, &period, &now), None, "{bad}");
        }
        for good in ["2023-01-10T23:59:59Z", "2024-02-29T00:00:00.5Z"] {
            assert!(end_of_utc_period(good, &period, &now).is_some(), "{good}");
        }
    }

    /// The word-at-a-time reading accepts exactly the texts a field-by-field check does, and
    /// gives their date and time with `Z`.
    #[test]
    fn canonical_text_matches_a_field_by_field_check() {
        fn spelled_utc(b: &[u8]) -> bool {
            let digits =
                |from: usize, len: usize| b[from..from + len].iter().all(u8::is_ascii_digit);
            if b.len() < 20
                || [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
                    .iter()
                    .any(|&(at, c)| b[at] != c)
                || ![(0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)]
                    .iter()
                    .all(|&(from, len)| digits(from, len))
            {
                return false;
            }
            let mut i = 19;
            if b[i] == b'.' {
                let fraction = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if fraction == 0 {
                    return false;
                }
                i += 1 + fraction;
            }
            matches!(&b[i..], b"Z" | b"+00:00" | b"-00:00")
        }
        let bases: [&[u8]; 8] = [
            b"2024-02-29T23:59:59Z",
            b"0000-01-01T00:00:00Z",
            b"9999-12-31T99:99:99Z",
            b"2024-01-15T09:30:00.388446Z",
            b"2024-01-15T09:30:00.5+00:00",
            b"2024-01-15T09:30:00-00:00",
            b"2024-01-15T09:30:00.12345678901Z",
            b"2024-01-15T09:30:00.1234567890123456-00:00",
        ];
        let mut texts: Vec<Vec<u8>> = bases.iter().map(|b| b.to_vec()).collect();
        let replacements = b"0123456789-+T:Z. z/\x7f\xff\x00\xfa";
        for base in bases {
            for at in 0..base.len() {
                for &r in replacements {
                    let mut t = base.to_vec();
                    t[at] = r;
                    texts.push(t);
                }
                texts.push(base[..at].to_vec());
            }
        }
        for t in texts {
            let read = canonical_text(&t);
            assert_eq!(
                read.is_some(),
                spelled_utc(&t),
                "{:?}",
                String::from_utf8_lossy(&t)
            );
            if let Some(text) = read {
                assert_eq!((&text[..19], text[19]), (&t[..19], b'Z'));
            }
        }
    }

    fn days_from(year: i64) -> i64 {
        erasure_rules_sdk::erasure_abi::days_from_civil(year, 1, 1)
    }

    /// The fast path's native speed on `make bench`'s input, to set the wasm engine's share
    /// of a call apart (`cargo test --release -p erasure-rule-retention native_speed --
    /// --ignored --nocapture`). Diagnostic only.
    #[test]
    #[ignore]
    fn native_speed() {
        use erasure_rules_sdk::{EvalInput, Record, ABI_VERSION};
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../policies/retention/eu-gdpr.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let now = 1_764_000_000i64;
        let records = Record::invoice_batch(now, 5000);
        let input = serde_json::to_vec(&EvalInput {
            abi: ABI_VERSION,
            slot: "retention".into(),
            now: Timestamp::from_unix_seconds(now).to_rfc3339(),
            config,
            request: serde_json::json!({"request_id": 1}),
            holds: vec![],
            records,
        })
        .unwrap();
        let mut times = Vec::new();
        let reps = std::env::var("REPS").map_or(100, |r| r.parse().unwrap());
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let mut out = Vec::new();
            assert!(evaluate_json(&input, &mut out));
            std::hint::black_box(&out);
            times.push(t.elapsed().as_secs_f64() * 1e9 / 5000.0);
        }
        times.sort_by(f64::total_cmp);
        eprintln!(
            "native fast path: median {:.1} ns/record, min {:.1}",
            times[reps / 2],
            times[0]
        );
    }
}
