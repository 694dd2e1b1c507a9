//! [`Until`]: the date a decision keeps data until.

use std::fmt;
use std::ops::Deref;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::{days_in_month, AbiError, Timestamp, MAX_TIMESTAMP_LEN};

/// When a retention ends, or how long an anonymised row stays: a UTC second held as its
/// canonical RFC 3339 text, `YYYY-MM-DDTHH:MM:SSZ` (years 0000–9999).
///
/// The text lives inline, so a decision read from a module allocates nothing for its date
/// (the host reads thousands of them per call). Canonical texts sort like the instants they
/// name, so comparing two dates compares bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Until([u8; 20]);

impl Until {
    /// Any date [`Timestamp::parse_rfc3339`] accepts (other offsets, fractions, `t` or `z`),
    /// made canonical; a canonical text is taken as it is.
    pub fn parse(text: &str) -> Result<Until, AbiError> {
        if let Some(until) = Until::from_canonical(text.as_bytes()) {
            return Ok(until);
        }
        if text.len() > MAX_TIMESTAMP_LEN {
            return Err(AbiError::FieldTooLong {
                field: "until",
                len: text.len(),
                max: MAX_TIMESTAMP_LEN,
            });
        }
        Until::from_timestamp(Timestamp::parse_rfc3339(text)?)
    }

    /// `bytes` when they are `YYYY-MM-DDTHH:MM:SSZ` naming a real date and time (seconds
    /// below 60): exactly the texts that parse and print back unchanged. A leap second
    /// (`:60`) is not canonical: it rolls over into the next minute.
    #[inline]
    pub fn from_canonical(bytes: &[u8]) -> Option<Until> {
        let b = <&[u8; 20]>::try_from(bytes).ok()?;
        let digit = |i: usize| b[i].wrapping_sub(b'0');
        let two = |i: usize| u32::from(digit(i)) * 10 + u32::from(digit(i + 1));
        let digits_ok = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| digit(i) <= 9);
        let shape_ok = b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z';
        if !(digits_ok && shape_ok) {
            return None;
        }
        let year = i64::from(two(0) * 100 + two(2));
        let (month, day) = (two(5), two(8));
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && two(11) <= 23
            && two(14) <= 59
            && two(17) <= 59;
        valid.then_some(Until(*b))
    }

    /// The instant `t`; [`AbiError::TimestampOutOfRange`] outside the years 0000–9999.
    pub fn from_timestamp(t: Timestamp) -> Result<Until, AbiError> {
        t.rfc3339_bytes()
            .map(Until)
            .ok_or(AbiError::TimestampOutOfRange)
    }

    /// The instant.
    pub fn timestamp(self) -> Timestamp {
        Timestamp::parse_rfc3339(self.as_str()).expect("a canonical date parses")
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every `Until` holds ASCII only: digits and separators checked by
        // `from_canonical`, or written by `Timestamp::rfc3339_bytes`.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl std::str::FromStr for Until {
    type Err = AbiError;

    /// [`Until::parse`].
    fn from_str(text: &str) -> Result<Until, AbiError> {
        Until::parse(text)
    }
}

impl Deref for Until {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Until {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Until {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Until> for String {
    fn from(until: Until) -> String {
        until.as_str().to_owned()
    }
}

impl Serialize for Until {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Until {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Until, D::Error> {
        let text = String::deserialize(deserializer)?;
        Until::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_texts_are_kept_and_others_rewritten() {
        let kept = Until::parse("2031-01-15T08:30:00Z").unwrap();
        assert_eq!(kept, "2031-01-15T08:30:00Z");
        for (text, canonical) in [
            ("2031-01-15T01:00:00.25+01:00", "2031-01-15T00:00:00Z"),
            ("2026-01-01t00:00:00z", "2026-01-01T00:00:00Z"),
            ("2030-12-31T23:59:60Z", "2031-01-01T00:00:00Z"),
        ] {
            assert_eq!(Until::parse(text).unwrap(), canonical, "{text}");
        }
        assert!(matches!(
            Until::parse("2030-02-30T00:00:00Z"),
            Err(AbiError::BadTimestamp(_))
        ));
        assert!(matches!(
            Until::parse(&"9".repeat(65)),
            Err(AbiError::FieldTooLong { field: "until", .. })
        ));
        // One hour before year 0000 begins in UTC.
        assert_eq!(
            Until::parse("0000-01-01T00:00:00+01:00"),
            Err(AbiError::TimestampOutOfRange)
        );
    }

    #[test]
    fn dates_order_like_instants_and_round_trip() {
        let a = Until::parse("2030-12-31T23:00:00-05:00").unwrap();
        let b = Until::parse("2031-01-01T01:00:00Z").unwrap();
        assert!(a > b, "04:00 UTC is after 01:00 UTC");
        assert_eq!(
            a.timestamp(),
            Timestamp::parse_rfc3339("2031-01-01T04:00:00Z").unwrap()
        );
        assert_eq!(Until::from_timestamp(a.timestamp()).unwrap(), a);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"2031-01-01T04:00:00Z\"");
        assert_eq!(serde_json::from_str::<Until>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Until>("\"soon\"").is_err());
    }
}
