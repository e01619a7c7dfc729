//! What a resource body shows of itself, as the history keeps it: type, id, version,
//! the harness identifiers it carries and, for harness resources only, a content digest.

use serde_json::Value;

use super::{Content, Seen};

/// What a resource body shows of itself. Content is kept only for resources carrying a
/// harness identifier (system starting with `prefix`): nothing else is ours to judge.
pub fn seen(resource: &Value, prefix: &str) -> Option<Seen> {
    let resource_type = resource.get("resourceType")?.as_str()?.to_owned();
    let id = resource.get("id")?.as_str()?.to_owned();
    let version = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let identifiers = harness_identifiers(resource, prefix);
    let content = (!identifiers.is_empty()).then(|| Content::of(resource));
    let patient = (resource_type != "Patient")
        .then(|| patient_of(resource))
        .flatten();
    Some(Seen {
        resource_type,
        id,
        version,
        identifiers,
        content,
        patient,
    })
}

/// The elements that say which Patient a resource is about, in the order looked at.
const PATIENT_ELEMENTS: [&str; 3] = ["subject", "patient", "beneficiary"];

/// `Patient/<id>` of the first patient reference in `subject`, `patient` or
/// `beneficiary` (absolute or relative, a `_history` suffix dropped); `None` when the
/// resource names no Patient by reference.
pub fn patient_of(resource: &Value) -> Option<String> {
    PATIENT_ELEMENTS.iter().find_map(|e| {
        let reference = resource.get(*e)?.get("reference")?.as_str()?;
        patient_reference(reference)
    })
}

/// `Patient/<id>` from a reference as written (`Patient/1`, `https://h/fhir/Patient/1`,
/// `Patient/1/_history/2`); `None` for anything else.
pub fn patient_reference(reference: &str) -> Option<String> {
    let path = reference.split(['?', '#']).next()?;
    let parts: Vec<&str> = path.split('/').collect();
    let at = parts.iter().rposition(|p| *p == "Patient")?;
    let id = parts.get(at + 1).filter(|id| !id.is_empty())?;
    Some(format!("Patient/{id}"))
}

/// `system|value` of every identifier whose system starts with `prefix`.
pub fn harness_identifiers(resource: &Value, prefix: &str) -> Vec<String> {
    let Some(list) = resource.get("identifier").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|i| {
            let system = i.get("system")?.as_str()?;
            let value = i.get("value")?.as_str()?;
            system
                .starts_with(prefix)
                .then(|| format!("{system}|{value}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_patient_a_resource_is_about() {
        let obs = json!({"resourceType": "Observation", "id": "o",
            "subject": {"reference": "https://h/fhir/Patient/p-1/_history/3"}});
        assert_eq!(patient_of(&obs).as_deref(), Some("Patient/p-1"));
        let claim = json!({"patient": {"reference": "Patient/9"}});
        assert_eq!(patient_of(&claim).as_deref(), Some("Patient/9"));
        let cov = json!({"beneficiary": {"reference": "Patient/b"}});
        assert_eq!(patient_of(&cov).as_deref(), Some("Patient/b"));
        let group = json!({"subject": {"reference": "Group/1"}});
        assert_eq!(patient_of(&group), None);
        assert_eq!(patient_of(&json!({"subject": {"display": "x"}})), None);
        assert_eq!(patient_reference("Patient/"), None);
    }
}
