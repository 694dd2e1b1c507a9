//! Turning the two slots' decisions about one record into one verdict: the most protective
//! decision wins (hold > retain > anonymise > erase). A hold keeps the retention module's date
//! and basis too, so a purge after the hold is lifted still honours the retention period.

use erasure_abi::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Erase,
    Anonymize,
    Retain,
    Hold,
}

impl Action {
    /// The ledger's word for the rows this action keeps.
    pub fn ledger_word(self) -> &'static str {
        match self {
            Action::Erase => "erased",
            Action::Anonymize => "anonymized",
            Action::Retain => "retained",
            Action::Hold => "held",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// Until when a kept row stays (RFC 3339); `None`: indefinitely (anonymised) or while held.
    pub until: Option<String>,
    pub basis: Option<String>,
    pub case_ref: Option<String>,
    /// sha256 of the module whose decision won.
    pub module: String,
}

fn action_of(d: &Decision) -> Action {
    match d {
        Decision::Erase => Action::Erase,
        Decision::Anonymize { .. } => Action::Anonymize,
        Decision::Retain { .. } => Action::Retain,
        Decision::Hold { .. } => Action::Hold,
    }
}

fn verdict_of(d: &Decision, module: &str) -> Verdict {
    let (until, basis, case_ref) = match d {
        Decision::Erase => (None, None, None),
        Decision::Anonymize { until, basis } => (until.clone(), basis.clone(), None),
        Decision::Retain { until, basis } => (Some(until.clone()), Some(basis.clone()), None),
        Decision::Hold { case } => (None, None, Some(case.clone())),
    };
    Verdict {
        action: action_of(d),
        until,
        basis,
        case_ref,
        module: module.to_owned(),
    }
}

/// Combines the decisions of every slot for one record; `decisions` pairs each decision with the
/// sha256 of the module that made it.
pub fn combine(decisions: &[(&Decision, &str)]) -> Verdict {
    let mut best: Option<Verdict> = None;
    // The latest `until` among the keeping decisions, with its basis.
    let mut latest: Option<(String, Option<String>)> = None;
    for (d, module) in decisions {
        let v = verdict_of(d, module);
        if let Some(u) = &v.until {
            if latest.as_ref().is_none_or(|(l, _)| later(u, l)) {
                latest = Some((u.clone(), v.basis.clone()));
            }
        }
        best = match best {
            None => Some(v),
            Some(b) if v.action > b.action => Some(v),
            Some(b) => Some(b),
        };
    }
    let mut best = best.expect("at least one decision");
    if best.action != Action::Erase {
        if let Some((until, basis)) = latest {
            best.until = Some(until);
            if best.basis.is_none() || best.action == Action::Hold {
                best.basis = basis;
            }
        }
    }
    best
}

/// RFC 3339 UTC timestamps as the modules write them compare as text when both use `Z`;
/// otherwise fall back to parsing.
fn later(a: &str, b: &str) -> bool {
    match (
        erasure_abi::Timestamp::parse_rfc3339(a),
        erasure_abi::Timestamp::parse_rfc3339(b),
    ) {
        (Ok(x), Ok(y)) => x > y,
        _ => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retain(until: &str) -> Decision {
        Decision::Retain {
            until: until.into(),
            basis: "tax".into(),
        }
    }

    #[test]
    fn most_protective_wins() {
        let hold = Decision::Hold { case: "C-1".into() };
        let v = combine(&[(&retain("2031-01-01T00:00:00Z"), "r"), (&hold, "h")]);
        assert_eq!(v.action, Action::Hold);
        assert_eq!(v.case_ref.as_deref(), Some("C-1"));
        assert_eq!(v.until.as_deref(), Some("2031-01-01T00:00:00Z"));
        assert_eq!(v.basis.as_deref(), Some("tax"));
        assert_eq!(v.module, "h");

        let v = combine(&[(&Decision::Erase, "r"), (&Decision::Erase, "h")]);
        assert_eq!(v.action, Action::Erase);
        assert_eq!(v.until, None);

        let anon = Decision::Anonymize {
            until: Some("2027-01-01T00:00:00Z".into()),
            basis: Some("security".into()),
        };
        let v = combine(&[(&anon, "r"), (&Decision::Erase, "h")]);
        assert_eq!(v.action, Action::Anonymize);
        assert_eq!(v.until.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(v.basis.as_deref(), Some("security"));
    }

    #[test]
    fn later_retention_wins_between_retains() {
        let v = combine(&[
            (&retain("2030-01-01T00:00:00Z"), "a"),
            (&retain("2032-06-01T00:00:00+02:00"), "b"),
        ]);
        assert_eq!(v.until.as_deref(), Some("2032-06-01T00:00:00+02:00"));
        assert_eq!(v.action, Action::Retain);
    }
}
