//! The mock's CapabilityStatement, generated from the EHR profile it behaves as: the
//! types, interactions and system interactions the profile says the EHR supports (the
//! mock refuses the others), with the search parameters the mock implements. Built once.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde_json::{Value, json};

use super::emulate::JSON_PATCH;
use super::search;
use crate::profile::{Profile, Verb};

/// Types listed when the profile's defaults support them (other FHIR R4 types are
/// served the same way); a profile's own `[resources.<Type>]` are listed too.
const LISTED: &[&str] = &[
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "MedicationRequest",
    "DocumentReference",
    "Claim",
    "Bundle",
];

/// What the mock implements whatever the profile says.
const DOCUMENTATION: &str = "fhirsurge built-in mock EHR (in memory), behaving as the EHR \
profile named in implementation.description: the types, interactions and system \
interactions listed here are the profile's, and the mock refuses the others (405). Ids are \
opaque server-assigned strings; an id given on create is ignored. Rules enforced (422): \
Observation needs status and code, plus the profile's write rules. Search is strict: unknown \
parameters answer 400; supported result parameters are _count, _summary=count and \
_sort=_lastUpdated|-_lastUpdated; paging is by the next link only. If-None-Exist needs an \
identifier parameter. patch takes JSON Patch (application/json-patch+json); a deleted \
resource answers 410 Gone. Conditional update/delete and _include are not supported.";

/// The CapabilityStatement JSON of the mock behaving as `profile`.
pub fn statement(profile: &Profile) -> Bytes {
    let types: BTreeSet<&str> = LISTED
        .iter()
        .copied()
        .chain(profile.resources.keys().map(String::as_str))
        .filter(|rt| VERBS.iter().any(|(v, _)| profile.supports_verb(rt, *v)))
        .collect();
    let patches = types
        .iter()
        .any(|rt| profile.supports_verb(rt, Verb::Patch));
    let system: Vec<Value> = [
        ("transaction", profile.write.transaction),
        ("batch", profile.write.batch),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(code, _)| json!({"code": code}))
    .collect();
    let mut rest = json!({
        "mode": "server",
        "documentation": DOCUMENTATION,
        "resource": types.iter().map(|t| resource(profile, t)).collect::<Vec<_>>(),
        "interaction": system,
    });
    if patches {
        rest["patchFormat"] = json!([JSON_PATCH]);
    }
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "kind": "instance",
        "software": {"name": "fhirsurge mock EHR", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": format!("fhirsurge built-in mock EHR behaving as profile `{}`", profile.name)
        },
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [rest],
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// Each verb a profile can support, with its CapabilityStatement interaction code
/// (conditional create is the `conditionalCreate` flag instead).
const VERBS: &[(Verb, &str)] = &[
    (Verb::Read, "read"),
    (Verb::Vread, "vread"),
    (Verb::Update, "update"),
    (Verb::Patch, "patch"),
    (Verb::Delete, "delete"),
    (Verb::History, "history-instance"),
    (Verb::Create, "create"),
    (Verb::Search, "search-type"),
    (Verb::ConditionalCreate, ""),
];

fn resource(profile: &Profile, rt: &str) -> Value {
    let supports = |v| profile.supports_verb(rt, v);
    let interactions: Vec<Value> = VERBS
        .iter()
        .filter(|(v, code)| !code.is_empty() && supports(*v))
        .map(|(_, code)| json!({"code": code}))
        .collect();
    let params: Vec<Value> = if supports(Verb::Search) {
        search::params(rt)
            .map(|(name, kind, doc)| json!({"name": name, "type": kind, "documentation": doc}))
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "type": rt,
        "interaction": interactions,
        "versioning": "versioned-update",
        "readHistory": supports(Verb::Vread) || supports(Verb::History),
        "updateCreate": supports(Verb::Update),
        "conditionalCreate": supports(Verb::ConditionalCreate) && supports(Verb::Create),
        "conditionalRead": "not-supported",
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_types_and_tells_the_truth_about_versioning() {
        let us = Profile::load("us-core").unwrap();
        let v: Value = serde_json::from_slice(&statement(&us)).unwrap();
        assert_eq!(v["fhirVersion"], "4.0.1");
        let types: BTreeSet<&str> = v["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, LISTED.iter().copied().collect());
        let patient = &v["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Patient")
            .unwrap();
        assert_eq!(patient["versioning"], "versioned-update");
        assert_eq!(patient["conditionalCreate"], true);
        assert_eq!(patient["interaction"].as_array().unwrap().len(), 8);
        assert_eq!(v["rest"][0]["patchFormat"][0], JSON_PATCH);
    }

    #[test]
    fn a_vendor_profile_lists_only_what_it_supports() {
        let epic = Profile::load("epic").unwrap();
        let v: Value = serde_json::from_slice(&statement(&epic)).unwrap();
        let rest = &v["rest"][0];
        assert_eq!(rest["interaction"], json!([]));
        assert!(rest.get("patchFormat").is_none());
        let encounter = rest["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Encounter")
            .unwrap();
        let codes: Vec<&str> = encounter["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["read", "search-type"]);
        assert_eq!(encounter["conditionalCreate"], false);
    }
}
