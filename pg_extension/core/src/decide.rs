//! Turning the two slots' decisions about one record into one verdict: the most protective
//! decision wins (hold > retain > anonymise > erase). A hold keeps the retention module's date
//! and basis too, so a purge after the hold is lifted still honours the retention period.

use erasure_abi::{Decision, Until};

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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub action: Action,
    /// Until when a kept row stays; `None`: indefinitely (anonymised) or while held.
    pub until: Option<Until>,
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

/// Combines the decisions of every slot for one record; `decisions` pairs each decision with the
/// sha256 of the module that made it. Which decision wins is the ABI's rule
/// ([`Decision::combine`]); this adds who decided, and gives a hold the retention date and basis
/// of the best keeping decision among the others.
pub fn combine(decisions: &[(&Decision, &str)]) -> Verdict {
    let winner = decisions
        .iter()
        .map(|(d, _)| (*d).clone())
        .reduce(Decision::combine)
        .expect("at least one decision");
    let module = decisions
        .iter()
        .find(|(d, _)| **d == winner)
        .map(|(_, m)| (*m).to_owned())
        .unwrap_or_default();
    let (until, basis, case_ref) = match &winner {
        Decision::Erase => (None, None, None),
        Decision::Anonymize { until, basis } => (*until, basis.clone(), None),
        Decision::Retain { until, basis } => (Some(*until), Some(basis.clone()), None),
        Decision::Hold { case } => {
            // The retention behind the hold: what the other slots would have kept, if anything.
            let kept = decisions
                .iter()
                .map(|(d, _)| (*d).clone())
                .filter(|d| {
                    matches!(
                        d,
                        Decision::Retain { .. } | Decision::Anonymize { until: Some(_), .. }
                    )
                })
                .reduce(|a, b| match (&a, &b) {
                    (Decision::Anonymize { .. }, Decision::Retain { .. }) => b,
                    (Decision::Retain { .. }, Decision::Anonymize { .. }) => a,
                    _ => Decision::combine(a, b),
                });
            match kept {
                Some(Decision::Retain { until, basis }) => {
                    (Some(until), Some(basis), Some(case.clone()))
                }
                Some(Decision::Anonymize { until, basis }) => (until, basis, Some(case.clone())),
                _ => (None, None, Some(case.clone())),
            }
        }
    };
    Verdict {
        action: action_of(&winner),
        until,
        // The ABI shares one basis text among records; a verdict owns its copy.
        basis: basis.as_deref().map(str::to_owned),
        case_ref,
        module,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retain(until: &str) -> Decision {
        Decision::Retain {
            until: until.parse().unwrap(),
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
            until: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            basis: Some("security".into()),
        };
        let v = combine(&[(&anon, "r"), (&Decision::Erase, "h")]);
        assert_eq!(v.action, Action::Anonymize);
        assert_eq!(v.until.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(v.basis.as_deref(), Some("security"));
    }

    #[test]
    fn indefinite_anonymisation_is_not_shortened_by_another_slot() {
        let kept = Decision::Anonymize {
            until: None,
            basis: Some("anonymous".into()),
        };
        let dated = Decision::Anonymize {
            until: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            basis: Some("security".into()),
        };
        let v = combine(&[(&dated, "a"), (&kept, "b")]);
        assert_eq!(v.action, Action::Anonymize);
        assert_eq!(v.until, None);
        assert_eq!(v.module, "b");
    }

    #[test]
    fn later_retention_wins_between_retains() {
        let v = combine(&[
            (&retain("2030-01-01T00:00:00Z"), "a"),
            (&retain("2032-06-01T00:00:00+02:00"), "b"),
        ]);
        // Dates are canonical UTC from the moment they exist.
        assert_eq!(v.until.as_deref(), Some("2032-05-31T22:00:00Z"));
        assert_eq!(v.action, Action::Retain);
    }
}
