//! The run's side of the EHR dialect: the profile, the search parameters the server
//! lists (when its CapabilityStatement could be read), and the tally of every decision
//! (replaced or skipped), every change made to what was sent, and every EHR behaviour
//! seen in responses, from which the report's `mapping` section is built. Shared by
//! every virtual user; the tally's lock is held for an increment, never across `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::probe::Capabilities;
use crate::profile::dialect::{self, Decision, Quirk};
use crate::profile::{Profile, Verb};
use crate::report::mapping::{self, Action};

/// The profile, what the server lists, and what happened.
#[derive(Debug)]
pub struct Mapper {
    profile: Profile,
    server: Option<Capabilities>,
    tally: Mutex<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    decisions: BTreeMap<Line, u64>,
    /// (resource type, interaction, change).
    adjustments: BTreeMap<(String, &'static str, String), u64>,
    quirks: BTreeMap<Quirk, u64>,
}

/// One kind of decision.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    resource_type: String,
    interaction: &'static str,
    action: Action,
    reason: String,
    outcome: String,
}

impl Mapper {
    pub fn new(profile: Profile, server: Option<Capabilities>) -> Mapper {
        Mapper {
            profile,
            server,
            tally: Mutex::new(Tally::default()),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether and how to do `verb` on `resource_type` (nothing is counted yet).
    pub fn decide(&self, resource_type: &str, verb: Verb) -> Decision {
        dialect::interaction(&self.profile, resource_type, verb)
    }

    /// Counts one decision: `Encounter create <reason>: <outcome>`.
    pub fn decided(
        &self,
        resource_type: &str,
        interaction: &'static str,
        action: Action,
        reason: &str,
        outcome: &str,
    ) {
        let line = Line {
            resource_type: resource_type.to_owned(),
            interaction,
            action,
            reason: reason.to_owned(),
            outcome: outcome.to_owned(),
        };
        *self.tally().decisions.entry(line).or_default() += 1;
    }

    /// Counts an interaction not done because the EHR does not support it.
    pub fn unsupported(&self, resource_type: &str, interaction: &'static str, outcome: &str) {
        let reason = dialect::unsupported(&self.profile);
        self.decided(
            resource_type,
            interaction,
            Action::Skipped,
            &reason,
            outcome,
        );
    }

    /// Counts the changes made to one request.
    pub fn adjusted(&self, resource_type: &str, interaction: &'static str, changes: &[String]) {
        if changes.is_empty() {
            return;
        }
        let mut t = self.tally();
        for c in changes {
            let key = (resource_type.to_owned(), interaction, c.clone());
            *t.adjustments.entry(key).or_default() += 1;
        }
    }

    /// The parameters of a search in the EHR's dialect; `None` (counted, with `outcome`)
    /// when the EHR would refuse any search the caller can make.
    pub fn search(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
        offers: &[(&str, &str)],
        outcome: &str,
    ) -> Option<Vec<(String, String)>> {
        let listed = self
            .server
            .as_ref()
            .and_then(|c| c.search_params(resource_type));
        match dialect::search(&self.profile, resource_type, params, offers, listed) {
            Ok(s) => {
                self.adjusted(resource_type, "search", &s.changes);
                Some(s.params)
            }
            Err(reason) => {
                self.decided(resource_type, "search", Action::Skipped, &reason, outcome);
                None
            }
        }
    }

    /// The parameters of a search in the EHR's dialect, without counting anything (the
    /// visibility prober's repeated searches must not inflate the mapping tally);
    /// `None` when the EHR cannot take it.
    pub fn search_params(
        &self,
        resource_type: &str,
        params: &[(&str, &str)],
    ) -> Option<Vec<(String, String)>> {
        let listed = self
            .server
            .as_ref()
            .and_then(|c| c.search_params(resource_type));
        dialect::search(&self.profile, resource_type, params, &[], listed)
            .ok()
            .map(|s| s.params)
    }

    /// Counts behaviours seen in a response.
    pub fn saw(&self, quirks: impl IntoIterator<Item = Quirk>) {
        let mut quirks = quirks.into_iter().peekable();
        if quirks.peek().is_none() {
            return;
        }
        let mut t = self.tally();
        for q in quirks {
            *t.quirks.entry(q).or_default() += 1;
        }
    }

    /// The report's `mapping` section: decisions and adjustments by count, then quirks
    /// seen, and the declared ones never seen (count 0).
    pub fn report(&self) -> mapping::Mapping {
        let t = self.tally();
        let mut decisions: Vec<mapping::Decision> = t
            .decisions
            .iter()
            .map(|(l, n)| mapping::Decision {
                resource_type: l.resource_type.clone(),
                interaction: l.interaction.to_owned(),
                action: l.action,
                reason: l.reason.clone(),
                outcome: l.outcome.clone(),
                count: *n,
            })
            .collect();
        decisions.sort_by_key(|d| std::cmp::Reverse(d.count));
        let mut adjustments: Vec<mapping::Adjustment> = t
            .adjustments
            .iter()
            .map(|((rt, interaction, change), n)| mapping::Adjustment {
                resource_type: rt.clone(),
                interaction: (*interaction).to_owned(),
                change: change.clone(),
                count: *n,
            })
            .collect();
        adjustments.sort_by_key(|a| std::cmp::Reverse(a.count));
        let mut quirks = t.quirks.clone();
        for q in dialect::declared(&self.profile) {
            quirks.entry(q).or_insert(0);
        }
        let quirks_observed = quirks
            .into_iter()
            .map(|(q, count)| mapping::QuirkSeen {
                quirk: q.id().to_owned(),
                detail: q.to_string(),
                declared: dialect::declares(&self.profile, &q),
                count,
            })
            .collect();
        mapping::Mapping {
            decisions,
            adjustments,
            quirks_observed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_becomes_the_report_section() {
        let m = Mapper::new(Profile::load("epic").unwrap(), None);
        for _ in 0..3 {
            m.decided(
                "Encounter",
                "create",
                Action::Replaced,
                "not supported by epic",
                "used an existing encounter",
            );
        }
        m.unsupported("Claim", "create", "skipped");
        m.adjusted("Condition", "create", &["verificationStatus: x".into()]);
        m.saw([Quirk::RelativeLocation, Quirk::NoEtag, Quirk::NoLocation]);
        let params = m.search("Observation", &[("identifier", "a|b")], &[], "skipped");
        assert_eq!(params, None);
        let r = m.report();
        assert_eq!(
            r.decisions[0].line(),
            "Encounter create not supported by epic: used an existing encounter (3×)"
        );
        assert_eq!(r.decisions.len(), 3);
        assert_eq!(r.skipped(), 2);
        assert_eq!(r.adjustments[0].count, 1);
        let quirk = |id: &str| r.quirks_observed.iter().find(|q| q.quirk == id).unwrap();
        assert!(quirk("relative_location").declared && quirk("relative_location").count == 1);
        assert!(!quirk("no_location").declared);
        // Declared but not seen: listed with 0.
        assert_eq!(quirk("paging_session_expired").count, 0);
    }
}
