//! Small, allocation-free JSON building blocks shared by the host and the guests.
//!
//! The ABI's hot paths (the host writing thousands of records, a guest reading them, the
//! host reading the decisions back) spend their time finding the end of JSON strings and
//! copying them. These helpers do that eight bytes at a time; they never decide anything
//! on their own, so every caller stays exactly as strict as serde_json.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bytes of a JSON string that are not plain: `"`, `\`, control characters (< 0x20) and
/// non-ASCII bytes (>= 0x80), as a word with the high bit set in each such byte lane
/// (and possibly in lanes after the first one; only the lowest is exact).
#[inline(always)]
fn special_lanes(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (has_zero(quote) | has_zero(backslash) | word.wrapping_sub(ONES * 0x20) | word) & HIGHS
}

/// Index of the first byte at or after `from` that is `"`, `\`, a control character or
/// non-ASCII; `bytes.len()` when there is none.
#[inline]
pub fn plain_run_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(chunk) = bytes.get(from..from + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let lanes = special_lanes(word);
        if lanes != 0 {
            // The lowest flagged lane is exact (borrows only propagate upwards).
            return from + (lanes.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while let Some(&b) = bytes.get(from) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            return from;
        }
        from += 1;
    }
    from
}

/// Appends `text` as a JSON string, escaped exactly as serde_json escapes it (`\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00XX`; nothing else).
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    loop {
        i = plain_run_end(bytes, i);
        let Some(&b) = bytes.get(i) else { break };
        if b >= 0x80 {
            // Non-ASCII text is written as it is.
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Reads the JSON string whose opening quote is at `bytes[at]`: its text and the index just
/// after the closing quote. `None` for anything this reader does not handle (no string there,
/// a control character, invalid UTF-8, an unterminated string, and escapes other than
/// `\" \\ \/ \b \f \n \r \t`); callers then fall back to serde_json, which either accepts the
/// text or names the error.
#[inline]
pub fn read_str(bytes: &[u8], at: usize) -> Option<(std::borrow::Cow<'_, str>, usize)> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let mut i = start;
    let mut ascii = true;
    loop {
        i = plain_run_end(bytes, i);
        match *bytes.get(i)? {
            b'"' => break,
            b'\\' => return read_escaped(bytes, start),
            b if b >= 0x80 => {
                ascii = false;
                i += 1;
            }
            _ => return None,
        }
    }
    let raw = &bytes[start..i];
    let text = if ascii {
        // SAFETY: every byte of `raw` is below 0x80 (plain_run_end stopped at each byte
        // that is not, and none was seen), and ASCII is valid UTF-8. Guests would otherwise
        // spend much of their time re-checking it.
        unsafe { std::str::from_utf8_unchecked(raw) }
    } else {
        std::str::from_utf8(raw).ok()?
    };
    Some((std::borrow::Cow::Borrowed(text), i + 1))
}

/// [`read_str`] for a string with escapes: decoded into an owned buffer.
#[cold]
fn read_escaped(bytes: &[u8], start: usize) -> Option<(std::borrow::Cow<'_, str>, usize)> {
    let mut out = Vec::new();
    let mut i = start;
    loop {
        let end = plain_run_end(bytes, i);
        out.extend_from_slice(&bytes[i..end]);
        i = end;
        match *bytes.get(i)? {
            b'"' => break,
            b'\\' => {
                out.push(match *bytes.get(i + 1)? {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => b'\x08',
                    b'f' => b'\x0c',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => return None,
                });
                i += 2;
            }
            b if b >= 0x80 => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    let text = String::from_utf8(out).ok()?;
    Some((std::borrow::Cow::Owned(text), i + 1))
}

/// `a == b`, eight bytes at a time (the last word overlapping the one before). On wasm32 a
/// slice comparison calls a byte-by-byte `memcmp`; this keeps short comparisons (keys,
/// literals, categories) to a few loads.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Whether `bytes[at..]` starts with `lit`; the index after it.
#[inline(always)]
pub fn literal_at(bytes: &[u8], at: usize, lit: &[u8]) -> Option<usize> {
    let end = at.checked_add(lit.len())?;
    bytes_eq(bytes.get(at..end)?, lit).then_some(end)
}

/// Index of the first byte at or after `at` that is not JSON whitespace.
#[inline(always)]
pub fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_is_slice_equality() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(bytes_eq(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!bytes_eq(&a, &b), "{n} {i}");
            }
            assert!(!bytes_eq(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn plain_run_end_finds_the_first_special_byte() {
        for text in [
            "",
            "a",
            "abcdefgh",
            "abcdefghij\"",
            "0123456789abcdef\\x",
            "é",
            "x\u{1}",
        ] {
            let expected = text
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
                .unwrap_or(text.len());
            for prefix in 0..=text.len().min(3) {
                let padded = format!("{}{text}", "-".repeat(prefix));
                assert_eq!(
                    plain_run_end(padded.as_bytes(), 0),
                    expected + prefix,
                    "{text:?}"
                );
            }
        }
        // Every byte value in every lane position.
        for b in 0..=255u8 {
            for pos in 0..10 {
                let mut v = vec![b'a'; 12];
                v[pos] = b;
                let special = b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b);
                assert_eq!(plain_run_end(&v, 0), if special { pos } else { 12 });
            }
        }
    }

    #[test]
    fn write_str_matches_serde_json() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain text".into(),
            "quote \" backslash \\ slash / tab \t nl \n cr \r".into(),
            "Art. 17(3)(b) § 147 AO – ünïcödé ✓ 😀".into(),
            "\u{7f}\u{0}\u{1f}\u{8}\u{c}".into(),
        ];
        samples.extend((0..128u8).map(|b| format!("ab{}cdefghij{}", b as char, b as char)));
        for s in samples {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap()
            );
            // And it reads back.
            let encoded = serde_json::to_vec(&s).unwrap();
            if let Some((text, end)) = read_str(&encoded, 0) {
                assert_eq!(text, s);
                assert_eq!(end, encoded.len());
            } else {
                assert!(
                    s.bytes()
                        .any(|b| b < 0x20 && !b"\x08\x0c\n\r\t".contains(&b)),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn read_str_refuses_what_it_does_not_handle() {
        for bad in [
            &b"abc"[..],
            b"\"abc",
            b"\"a\x01\"",
            b"\"\\u0041\"",
            b"\"\\x\"",
            b"\"\xff\"",
        ] {
            assert_eq!(read_str(bad, 0), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(read_str(b"\"a\\/b\" ", 0), Some(("a/b".into(), 6)));
    }
}
