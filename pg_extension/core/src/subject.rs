//! Subjects: who an erasure request is about, written `kind:value`.

use std::fmt;

use crate::error::CoreError;

/// The accepted forms, shown in every rejection (the rejected value is never echoed:
/// it may itself be personal data).
pub const ACCEPTED_FORMS: &str =
    "user:<id>, contact:<id>, phone:<E.164 number, e.g. +4915112345678>, \
email:<address>, meta:<app-scoped Meta user id>, org:<id> (ids are positive 64-bit integers)";

/// The kind of a subject; the data map names its root tables per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    User,
    Contact,
    Phone,
    Email,
    Meta,
    Org,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 6] = [
        SubjectKind::User,
        SubjectKind::Contact,
        SubjectKind::Phone,
        SubjectKind::Email,
        SubjectKind::Meta,
        SubjectKind::Org,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Contact => "contact",
            SubjectKind::Phone => "phone",
            SubjectKind::Email => "email",
            SubjectKind::Meta => "meta",
            SubjectKind::Org => "org",
        }
    }

    pub fn parse(kind: &str) -> Option<SubjectKind> {
        SubjectKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// The value that root rows are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectValue {
    Id(i64),
    Text(String),
}

/// A parsed, normalised subject.
#[derive(Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub value: SubjectValue,
}

// Debug must not print the value: subjects end up in panics and logs.
impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({}:…)", self.kind.as_str())
    }
}

impl Subject {
    /// Parses `kind:value`, normalising phones (separators dropped, E.164 checked) and
    /// e-mail addresses (lower-cased, since they match case-insensitively).
    pub fn parse(text: &str) -> Result<Subject, CoreError> {
        let malformed = |why: &'static str| CoreError::MalformedSubject { why };
        let (kind, value) = text.split_once(':').ok_or(malformed("missing 'kind:'"))?;
        let kind = SubjectKind::parse(kind.trim()).ok_or(malformed("unknown kind"))?;
        let value = value.trim();
        let value = match kind {
            SubjectKind::User | SubjectKind::Contact | SubjectKind::Org => {
                SubjectValue::Id(parse_id(value).ok_or(malformed("not a positive 64-bit id"))?)
            }
            SubjectKind::Phone => SubjectValue::Text(
                normalise_phone(value).ok_or(malformed("not an E.164 phone number"))?,
            ),
            SubjectKind::Email => SubjectValue::Text(
                normalise_email(value).ok_or(malformed("not an e-mail address"))?,
            ),
            SubjectKind::Meta => {
                if value.is_empty()
                    || value.len() > 64
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(malformed("not a Meta app-scoped user id"));
                }
                SubjectValue::Text(value.to_owned())
            }
        };
        Ok(Subject { kind, value })
    }

    /// The canonical text form, `kind:normalised-value`; hashed, never stored.
    pub fn canonical(&self) -> String {
        match &self.value {
            SubjectValue::Id(id) => format!("{}:{id}", self.kind.as_str()),
            SubjectValue::Text(t) => format!("{}:{t}", self.kind.as_str()),
        }
    }

    /// A salted SHA-256 of the canonical form: lets the audit trail and legal holds
    /// recognise a subject without holding its phone number or address.
    pub fn hash(&self, salt: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(salt.as_bytes());
        h.update([0u8]);
        h.update(self.canonical().as_bytes());
        hex::encode(h.finalize())
    }
}

fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|&id| id > 0)
}

/// Spaces, dashes, dots and parentheses are dropped; what is left must be `+` and 8 to 15 digits.
pub fn normalise_phone(s: &str) -> Option<String> {
    let kept: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(kept)
}

fn normalise_email(s: &str) -> Option<String> {
    let (local, domain) = s.rsplit_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@');
    ok.then(|| s.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            Subject::parse("contact:1001").unwrap().value,
            SubjectValue::Id(1001)
        );
        assert_eq!(Subject::parse("user:7").unwrap().kind, SubjectKind::User);
        assert_eq!(Subject::parse("org:3").unwrap().kind, SubjectKind::Org);
        assert_eq!(
            Subject::parse("phone:+49 (151) 123-45.678").unwrap().value,
            SubjectValue::Text("+4915112345678".into())
        );
        assert_eq!(
            Subject::parse("email:Ana.Silva@Example.COM").unwrap().value,
            SubjectValue::Text("ana.silva@example.com".into())
        );
        assert_eq!(
            Subject::parse("meta:10223344556677").unwrap().canonical(),
            "meta:10223344556677"
        );
    }

    #[test]
    fn rejects_malformed_without_echo() {
        for bad in [
            "",
            "contact",
            "contact:",
            "contact:0",
            "contact:-5",
            "contact:12a",
            "contact:99999999999999999999",
            "phone:4930987654",
            "phone:+49",
            "phone:+49151123456789012",
            "phone:+49abc12345678",
            "email:nobody",
            "email:a@b",
            "email:a b@example.com",
            "meta:",
            "meta:a;drop table",
            "person:1",
            "user:1.5",
        ] {
            let err = Subject::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("user:<id>"), "{msg}");
            let value = bad.split_once(':').map_or("", |(_, v)| v);
            if value.len() >= 5 {
                assert!(!msg.contains(value), "echoed value in {msg}");
            }
        }
    }

    #[test]
    fn hash_is_salted_and_stable() {
        let s = Subject::parse("phone:+4915112345678").unwrap();
        assert_eq!(s.hash("a"), s.hash("a"));
        assert_ne!(s.hash("a"), s.hash("b"));
        assert!(!format!("{s:?}").contains("4915"));
    }
}
