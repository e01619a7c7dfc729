//! The mock's CapabilityStatement: what it really implements, no more. Built once.

use bytes::Bytes;
use serde_json::{Value, json};

use super::search::PARAMS;

/// Types listed by name; any other `^[A-Z][A-Za-z]+$` type is accepted the same way.
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

const DOCUMENTATION: &str = "fhirsurge built-in mock EHR (in memory). Accepts any resource type \
whose name matches ^[A-Z][A-Za-z]+$ with the interactions listed for each type here. Ids are \
opaque server-assigned strings; an id given on create is ignored. Rules enforced (422): \
Observation needs status and code. Search is strict: unknown parameters answer 400; \
supported result parameters are _count (default 20, at most 200), _summary=count and \
_sort=_lastUpdated|-_lastUpdated; paging is by the next link only. If-None-Exist needs an \
identifier parameter. delete, patch, conditional update/delete and _include are not supported.";

/// The CapabilityStatement JSON.
pub fn statement() -> Bytes {
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "kind": "instance",
        "software": {"name": "fhirsurge mock EHR", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "fhirsurge built-in mock EHR"},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": DOCUMENTATION,
            "resource": LISTED.iter().map(|t| resource(t)).collect::<Vec<_>>(),
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

fn resource(rt: &str) -> Value {
    let interactions = [
        "read",
        "vread",
        "update",
        "create",
        "search-type",
        "history-instance",
    ];
    json!({
        "type": rt,
        "interaction": interactions.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        "versioning": "versioned-update",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": true,
        "conditionalRead": "not-supported",
        "conditionalUpdate": false,
        "conditionalDelete": "not-supported",
        "searchParam": PARAMS
            .iter()
            .map(|(name, kind, doc)| json!({"name": name, "type": kind, "documentation": doc}))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_types_and_tells_the_truth_about_versioning() {
        let v: Value = serde_json::from_slice(&statement()).unwrap();
        assert_eq!(v["fhirVersion"], "4.0.1");
        let types: Vec<&str> = v["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, LISTED);
        assert_eq!(
            v["rest"][0]["resource"][0]["versioning"],
            "versioned-update"
        );
        assert_eq!(v["rest"][0]["resource"][0]["conditionalCreate"], true);
    }
}
