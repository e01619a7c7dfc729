//! What the scope probe tries, decided purely: the scopes a token holds (SMART v1 or v2
//! spelling), which probe requests they allow, and what an answer means. A success is a
//! request the target accepted outside the token's scopes; 401 and 403 are refusals;
//! anything else (404, 422, 5xx, no answer) proves neither and is inconclusive.

use std::collections::BTreeMap;

/// One SMART permission letter: `c`, `r`, `u`, `d`, `s`.
pub type Perm = char;

/// The scopes a token holds: permission letters per resource type (`*` for all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held(BTreeMap<String, String>);

impl Held {
    /// Reads a space-separated `scope` (v1 `system/Patient.read`, v2 `system/Patient.rs`);
    /// what is not a `system/` or `patient/`/`user/` resource scope is ignored (`launch`,
    /// `openid`), and so are granular scopes (`?category=…`), which allow less.
    pub fn parse(scope: &str) -> Held {
        let mut held = Held::default();
        for word in scope.split_whitespace() {
            let Some((_, rest)) = word.split_once('/') else {
                continue;
            };
            if rest.contains('?') {
                continue;
            }
            let Some((rt, perms)) = rest.split_once('.') else {
                continue;
            };
            let letters = match perms {
                "read" => "rs",
                "write" => "cud",
                "*" => "cruds",
                p if !p.is_empty() && p.chars().all(|c| "cruds".contains(c)) => p,
                _ => continue,
            };
            let entry = held.0.entry(rt.to_owned()).or_default();
            for c in letters.chars() {
                if !entry.contains(c) {
                    entry.push(c);
                }
            }
        }
        held
    }

    /// Whether `perm` on `rt` is allowed.
    pub fn allows(&self, rt: &str, perm: Perm) -> bool {
        [rt, "*"]
            .iter()
            .any(|t| self.0.get(*t).is_some_and(|p| p.contains(perm)))
    }
}

/// A probe request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `GET Type/id`.
    Read,
    /// `GET Type?patient=…`.
    Search,
    /// `POST Type`.
    Create,
    /// `PUT Type/id` with the resource as it is.
    Update,
}

impl Action {
    pub fn perm(self) -> Perm {
        match self {
            Action::Read => 'r',
            Action::Search => 's',
            Action::Create => 'c',
            Action::Update => 'u',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Search => "search",
            Action::Create => "create",
            Action::Update => "update",
        }
    }
}

/// One planned request and whether the held scopes allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub resource_type: String,
    pub in_scope: bool,
}

impl Step {
    /// `create Observation`.
    pub fn request(&self) -> String {
        format!("{} {}", self.action.as_str(), self.resource_type)
    }

    /// `system/Observation.c`.
    pub fn needs(&self) -> String {
        format!("system/{}.{}", self.resource_type, self.action.perm())
    }
}

/// The probe: one control request the scopes allow (the first of the candidates that
/// is in scope, if any), then every candidate outside them. The candidates read and
/// write the run's patient and a resource of `other` type about that patient.
pub fn plan(held: &Held, other: &str, other_id: bool) -> Vec<Step> {
    let candidates = [
        (Action::Read, "Patient"),
        (Action::Search, other),
        (Action::Read, other),
        (Action::Create, other),
        (Action::Update, "Patient"),
    ];
    let steps: Vec<Step> = candidates
        .iter()
        .filter(|(a, rt)| other_id || !(*a == Action::Read && *rt == other))
        .map(|(action, rt)| Step {
            action: *action,
            resource_type: (*rt).to_owned(),
            in_scope: held.allows(rt, action.perm()),
        })
        .collect();
    let control = steps.iter().find(|s| s.in_scope).cloned();
    control
        .into_iter()
        .chain(steps.into_iter().filter(|s| !s.in_scope))
        .collect()
}

/// What an answer to a probe request means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: the target did it.
    Accepted,
    /// 401 or 403.
    Refused,
    /// Anything else: proves neither.
    Inconclusive,
}

pub fn answer(status: Option<u16>) -> Answer {
    match status {
        Some(s) if (200..300).contains(&s) => Answer::Accepted,
        Some(401 | 403) => Answer::Refused,
        _ => Answer::Inconclusive,
    }
}

/// The narrower scopes asked for when the scenario names none: read and search on
/// Patient only, in the spelling the EHR takes.
pub fn default_scopes(v1_only: bool) -> Vec<String> {
    vec![if v1_only {
        "system/Patient.read".to_owned()
    } else {
        "system/Patient.rs".to_owned()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_scopes_read_in_either_spelling() {
        let h = Held::parse("system/Patient.read launch system/Observation.c user/Claim.rs");
        assert!(h.allows("Patient", 'r') && h.allows("Patient", 's'));
        assert!(!h.allows("Patient", 'u') && !h.allows("Patient", 'c'));
        assert!(h.allows("Observation", 'c') && !h.allows("Observation", 'r'));
        assert!(h.allows("Claim", 's'));
        let all = Held::parse("system/*.cruds");
        assert!(all.allows("Encounter", 'd'));
        let granular = Held::parse("system/Observation.rs?category=vital-signs");
        assert!(!granular.allows("Observation", 'r'));
        assert_eq!(Held::parse("system/Patient.bogus"), Held::default());
    }

    #[test]
    fn a_read_only_patient_token_is_probed_outside_its_scopes_after_one_control() {
        let steps = plan(&Held::parse("system/Patient.rs"), "Observation", true);
        let shown: Vec<(String, bool)> = steps.iter().map(|s| (s.request(), s.in_scope)).collect();
        assert_eq!(
            shown,
            [
                ("read Patient".to_owned(), true),
                ("search Observation".to_owned(), false),
                ("read Observation".to_owned(), false),
                ("create Observation".to_owned(), false),
                ("update Patient".to_owned(), false),
            ]
        );
        assert_eq!(steps[3].needs(), "system/Observation.c");
        // No resource of the other type to read: that request is left out.
        let steps = plan(&Held::parse("system/Observation.rs"), "Observation", false);
        let shown: Vec<String> = steps.iter().map(Step::request).collect();
        assert_eq!(
            shown,
            [
                "search Observation",
                "read Patient",
                "create Observation",
                "update Patient"
            ]
        );
        // Everything allowed: only the control, nothing to probe.
        let steps = plan(&Held::parse("system/*.cruds"), "Observation", true);
        assert!(steps.iter().all(|s| s.in_scope) && steps.len() == 1);
    }

    #[test]
    fn only_a_success_is_acceptance_and_only_401_or_403_a_refusal() {
        assert_eq!(answer(Some(201)), Answer::Accepted);
        assert_eq!(answer(Some(200)), Answer::Accepted);
        assert_eq!(answer(Some(403)), Answer::Refused);
        assert_eq!(answer(Some(401)), Answer::Refused);
        for unclear in [Some(404), Some(422), Some(500), Some(302), None] {
            assert_eq!(answer(unclear), Answer::Inconclusive, "{unclear:?}");
        }
        assert_eq!(default_scopes(true), ["system/Patient.read"]);
        assert_eq!(default_scopes(false), ["system/Patient.rs"]);
    }
}
