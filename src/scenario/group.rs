//! User groups (`[[groups]]`): who the virtual users are — clinicians reading charts,
//! the AI write-back agent, billing — each with its share of the users (a weight, or a
//! fixed number under the closed model), its own workflow and its think time between
//! steps. Parsed from the file here and validated with the key's location.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Step;
use super::file::Locator;
use crate::source::SourceError;

/// One validated user group.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    /// Its share of the users (closed model) or of the encounter starts (open model);
    /// with fixed user counts, the count.
    pub weight: u32,
    /// A fixed number of users (closed model), when given instead of a weight.
    pub users: Option<u32>,
    /// The group's encounter: steps in order, each with how many times it runs.
    pub workflow: Vec<(Step, u32)>,
    /// Pause between two steps of an encounter.
    pub think_time: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupFile {
    name: Spanned<String>,
    #[serde(default)]
    weight: Option<Spanned<u32>>,
    #[serde(default)]
    users: Option<Spanned<u32>>,
    #[serde(default)]
    workflow: Option<Spanned<Vec<super::file::StepFile>>>,
    #[serde(default, with = "humantime_serde")]
    think_time: Option<Duration>,
}

/// Validates the groups: names unique and non-empty; each a weight or a fixed number
/// of users (all groups alike), at least 1; a workflow of its own or the scenario's.
pub(super) fn validate(
    groups: Vec<Spanned<GroupFile>>,
    default_workflow: &[(Step, u32)],
    at: &Locator<'_>,
) -> Result<Vec<Group>, SourceError> {
    let mut out: Vec<Group> = Vec::with_capacity(groups.len());
    let mut fixed: Option<bool> = None;
    for spanned in groups {
        let span = spanned.span();
        let g = spanned.into_inner();
        let name = g.name.get_ref().trim().to_owned();
        if name.is_empty() || out.iter().any(|o| o.name == name) {
            let m = format!("groups.name: `{name}` must be non-empty and unique");
            return Err(at.error(g.name.span(), m));
        }
        let (weight, users) = share(&g, at)?;
        let is_fixed = users.is_some();
        if *fixed.get_or_insert(is_fixed) != is_fixed {
            let m =
                "groups: give every group a `weight` or every group a number of `users`, not a mix";
            return Err(at.error(at.key_in(span, Some("users")), m));
        }
        let workflow = match g.workflow {
            None => default_workflow.to_vec(),
            Some(w) if w.get_ref().is_empty() => {
                return Err(at.error(w.span(), "groups.workflow: needs at least one step"));
            }
            Some(w) => w
                .into_inner()
                .into_iter()
                .map(|s| (s.step, s.weight))
                .collect(),
        };
        out.push(Group {
            name,
            weight,
            users,
            workflow,
            think_time: g.think_time.unwrap_or(Duration::ZERO),
        });
    }
    Ok(out)
}

/// The group's weight, and its fixed user count when it has one.
fn share(g: &GroupFile, at: &Locator<'_>) -> Result<(u32, Option<u32>), SourceError> {
    match (&g.weight, &g.users) {
        (Some(_), Some(u)) => Err(at.error(
            u.span(),
            "groups.users: give a `weight` or a number of `users`, not both",
        )),
        (Some(w), None) if *w.get_ref() == 0 => {
            Err(at.error(w.span(), "groups.weight: must be at least 1"))
        }
        (Some(w), None) => Ok((*w.get_ref(), None)),
        (None, Some(u)) if *u.get_ref() == 0 => {
            Err(at.error(u.span(), "groups.users: must be at least 1"))
        }
        (None, Some(u)) => Ok((*u.get_ref(), Some(*u.get_ref()))),
        (None, None) => Ok((1, None)),
    }
}

/// The group of the `k`-th encounter start under the open model: starts are dealt out
/// in proportion to the weights, the same way every run (`k mod Σweights` walks the
/// cumulative weights).
pub fn group_of(weights: &[u32], k: u64) -> usize {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return 0;
    }
    let mut slot = k % total;
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if slot < w {
            return i;
        }
        slot -= w;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::group_of;

    #[test]
    fn starts_are_dealt_out_by_weight() {
        let weights = [6, 1, 3];
        let mut n = [0; 3];
        for k in 0..1000 {
            n[group_of(&weights, k)] += 1;
        }
        assert_eq!(n, [600, 100, 300]);
        assert_eq!(group_of(&[], 5), 0);
    }
}
