//! A search in the EHR's dialect: the parameters a search of a type must carry
//! (`required_any`, e.g. Epic Observation: `patient` plus `category` or `code`) added
//! from what the caller can offer, preferring a set the server lists when that is known,
//! and `_count` kept within the EHR's maximum.

use std::collections::BTreeSet;

use crate::profile::{Profile, SearchRules, Verb};

/// The parameters to send, and what was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    pub params: Vec<(String, String)>,
    /// One stable line per change (`added \`code\` (needs patient+category or patient+code)`).
    pub changes: Vec<String>,
}

/// The search of `resource_type` with `params`, made acceptable to the EHR. `offers` are
/// parameters the caller can add if the EHR requires them (`category=vital-signs`);
/// `listed` are the search parameters the server says it supports for the type, when
/// known. `Err` says why the EHR would refuse any search the caller can make.
pub fn search(
    profile: &Profile,
    resource_type: &str,
    params: &[(&str, &str)],
    offers: &[(&str, &str)],
    listed: Option<&BTreeSet<String>>,
) -> Result<Search, String> {
    if !profile.supports_verb(resource_type, Verb::Search) {
        return Err(super::unsupported(profile));
    }
    let mut out = Search {
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        changes: Vec::new(),
    };
    clamp_count(profile, resource_type, &mut out);
    let default = SearchRules::default();
    let rules = profile
        .resource(resource_type)
        .map_or(&default, |r| &r.search);
    if rules.satisfied_by(params.iter().map(|(k, _)| *k)) {
        return Ok(out);
    }
    let sent: BTreeSet<&str> = params.iter().map(|(k, _)| bare(k)).collect();
    let can = |p: &String| sent.contains(p.as_str()) || offers.iter().any(|(k, _)| k == p);
    let on_server = |set: &Vec<String>| listed.is_none_or(|l| set.iter().all(|p| l.contains(p)));
    let satisfiable: Vec<&Vec<String>> = rules
        .required_any
        .iter()
        .filter(|set| set.iter().all(can))
        .collect();
    let Some(set) = satisfiable
        .iter()
        .find(|s| on_server(s))
        .or(satisfiable.first())
    else {
        return Err(format!("needs one of {}", sets(&rules.required_any)));
    };
    for p in set.iter().filter(|p| !sent.contains(p.as_str())) {
        if let Some((k, v)) = offers.iter().find(|(k, _)| k == p) {
            out.params.push(((*k).to_owned(), (*v).to_owned()));
            out.changes.push(format!(
                "added `{k}` (needs one of {})",
                sets(&rules.required_any)
            ));
        }
    }
    Ok(out)
}

/// `_count` above the EHR's maximum for the type is lowered to it.
fn clamp_count(profile: &Profile, resource_type: &str, out: &mut Search) {
    let Some(max) = profile.page_rules(resource_type).max_count else {
        return;
    };
    for (k, v) in out.params.iter_mut().filter(|(k, _)| k == "_count") {
        if v.parse::<u32>().is_ok_and(|n| n > max.get()) {
            out.changes.push(format!(
                "{k}: {v} lowered to {max}, the most the EHR serves"
            ));
            *v = max.to_string();
        }
    }
}

fn bare(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// `[patient+category | patient+code]`.
fn sets(required: &[Vec<String>]) -> String {
    let parts: Vec<String> = required.iter().map(|s| s.join("+")).collect();
    format!("[{}]", parts.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &Search) -> Vec<&str> {
        s.params.iter().map(|(k, _)| k.as_str()).collect()
    }

    const OFFERS: [(&str, &str); 2] = [
        ("category", "vital-signs"),
        ("code", "http://loinc.org|8867-4"),
    ];

    #[test]
    fn epic_observation_searches_get_a_category_or_a_code() {
        let epic = Profile::load("epic").unwrap();
        let s = search(
            &epic,
            "Observation",
            &[("patient", "Patient/p")],
            &OFFERS,
            None,
        )
        .unwrap();
        assert_eq!(names(&s), ["patient", "category"]);
        assert_eq!(s.params[1].1, "vital-signs");
        assert_eq!(
            s.changes,
            vec!["added `category` (needs one of [patient+category | patient+code])".to_string()]
        );
        // A server that does not list `category` gets the code set.
        let listed: BTreeSet<String> = ["patient", "code", "_id"].map(String::from).into();
        let s = search(
            &epic,
            "Observation",
            &[("patient", "Patient/p")],
            &OFFERS,
            Some(&listed),
        )
        .unwrap();
        assert_eq!(names(&s), ["patient", "code"]);
        // Nothing to offer: refused, with the reason.
        let err = search(&epic, "Observation", &[("identifier", "x|1")], &[], None).unwrap_err();
        assert_eq!(err, "needs one of [patient+category | patient+code]");
    }

    #[test]
    fn satisfied_searches_go_unchanged_and_unsupported_ones_are_refused() {
        let us = Profile::load("us-core").unwrap();
        let s = search(
            &us,
            "Observation",
            &[("patient", "Patient/p"), ("_count", "20")],
            &OFFERS,
            None,
        )
        .unwrap();
        assert_eq!(names(&s), ["patient", "_count"]);
        assert!(s.changes.is_empty());
        let oracle = Profile::load("oracle-health").unwrap();
        assert!(search(&oracle, "Condition", &[("identifier", "x|1")], &[], None).is_err());
        assert!(search(&oracle, "Condition", &[("subject:Patient", "p")], &[], None).is_ok());
        let err = search(&oracle, "ChargeItem", &[("patient", "p")], &[], None).unwrap_err();
        assert_eq!(err, "not supported by oracle-health");
    }

    #[test]
    fn count_is_kept_within_the_maximum() {
        let oracle = Profile::load("oracle-health").unwrap();
        let s = search(
            &oracle,
            "DocumentReference",
            &[("patient", "p"), ("_count", "500")],
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.params[1], ("_count".into(), "100".into()));
        assert_eq!(s.changes.len(), 1);
    }
}
