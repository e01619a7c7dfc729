//! The EHR-mapping section of the report: the interactions the EHR does not support and
//! what the runner did instead (replaced or skipped, counted, never silently), what it
//! changed in what it sent so the EHR would accept it, and the EHR behaviours seen in
//! responses against what the profile declares.

use serde::{Deserialize, Serialize};

/// How the run spoke the EHR's dialect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// Interactions done differently or not at all, with counts.
    pub decisions: Vec<Decision>,
    /// Changes to what was sent, with counts.
    pub adjustments: Vec<Adjustment>,
    /// Behaviours seen in responses (and declared ones not seen, count 0).
    pub quirks_observed: Vec<QuirkSeen>,
}

/// What happened to an interaction the EHR does not take as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Something else was done, the way a real integration does it.
    Replaced,
    /// Not done.
    Skipped,
}

/// One kind of decision, counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub resource_type: String,
    /// `create`, `conditional_create`, `update`, `search`, `read`, `history`.
    pub interaction: String,
    pub action: Action,
    /// Why (`not supported by epic`).
    pub reason: String,
    /// What was done instead (`used an existing encounter`, `skipped`).
    pub outcome: String,
    pub count: u64,
}

/// One kind of change to what was sent, counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    pub resource_type: String,
    /// `search` for a search, else the write.
    pub interaction: String,
    pub change: String,
    pub count: u64,
}

/// One behaviour seen (or declared and not seen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuirkSeen {
    /// A stable name (`relative_location`, `expected_change`, …).
    pub quirk: String,
    pub detail: String,
    /// Whether the profile declares it.
    pub declared: bool,
    /// Times seen; 0 for a declared behaviour the run never saw.
    pub count: u64,
}

impl Decision {
    /// `Encounter create not supported by epic: used an existing encounter (1,234×)`.
    pub fn line(&self) -> String {
        format!(
            "{} {} {}: {} ({}×)",
            self.resource_type,
            self.interaction,
            self.reason,
            self.outcome,
            thousands(self.count)
        )
    }
}

impl Adjustment {
    /// `Condition create: verificationStatus: … (12×)`.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {} ({}×)",
            self.resource_type,
            self.interaction,
            self.change,
            thousands(self.count)
        )
    }
}

impl QuirkSeen {
    /// `relative Location on create: 1,234× (declared)`.
    pub fn line(&self) -> String {
        match (self.count, self.declared) {
            (0, _) => format!("{}: declared, not seen", self.detail),
            (n, true) => format!("{}: {}× (declared)", self.detail, thousands(n)),
            (n, false) => format!(
                "{}: {}× (NOT declared by the profile)",
                self.detail,
                thousands(n)
            ),
        }
    }
}

impl Mapping {
    /// Whether anything was replaced, skipped or adjusted.
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty() && self.adjustments.is_empty()
    }

    /// Interactions not done, all kinds together.
    pub fn skipped(&self) -> u64 {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Skipped)
            .map(|d| d.count)
            .sum()
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_the_scorecard_shows_them() {
        let d = Decision {
            resource_type: "Encounter".into(),
            interaction: "create".into(),
            action: Action::Replaced,
            reason: "not supported by epic".into(),
            outcome: "used an existing encounter".into(),
            count: 1234,
        };
        assert_eq!(
            d.line(),
            "Encounter create not supported by epic: used an existing encounter (1,234×)"
        );
        let q = QuirkSeen {
            quirk: "no_etag".into(),
            detail: "no ETag on a write".into(),
            declared: false,
            count: 3,
        };
        assert_eq!(
            q.line(),
            "no ETag on a write: 3× (NOT declared by the profile)"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
