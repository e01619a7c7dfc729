//! Reading a FHIR server's answer: the outcome class of a status or transport error, the
//! id and version in a `Location` or `ETag`, and what a resource or Bundle showed. Pure
//! functions; ids, versions and ETags stay opaque strings.

use serde_json::Value;

use crate::history::{Content, ErrorClass, Interaction, Outcome, Seen};

/// Classifies an HTTP status for an interaction.
///
/// A 404/410 on a read is a valid answer ("absent"), so it is `ok`. A 4xx elsewhere came
/// before any commit: `fail`. A 5xx may follow a commit (a gateway after the upstream
/// wrote): `info`. 408 is the server giving up on reading the request: `info`, not sure.
pub fn classify_status(f: Interaction, status: u16) -> (Outcome, Option<ErrorClass>) {
    match status {
        200..=299 => (Outcome::Ok, None),
        404 | 410 if matches!(f, Interaction::Read | Interaction::Vread) => (Outcome::Ok, None),
        408 => (Outcome::Info, Some(ErrorClass::Timeout)),
        401 | 403 => (Outcome::Fail, Some(ErrorClass::Auth)),
        409 | 412 => (Outcome::Fail, Some(ErrorClass::Conflict)),
        429 => (Outcome::Fail, Some(ErrorClass::RateLimited)),
        400..=499 => (Outcome::Fail, Some(ErrorClass::ClientError)),
        500..=599 => (Outcome::Info, Some(ErrorClass::ServerError)),
        // 1xx/3xx as a final answer: the harness cannot tell what happened.
        _ => (Outcome::Info, Some(ErrorClass::BadResponse)),
    }
}

/// Classifies a transport error. Only a failure to connect is known not to have sent
/// anything; everything else may have reached the server.
pub fn classify_transport(err: &reqwest::Error) -> (Outcome, ErrorClass) {
    if err.is_connect() {
        (Outcome::Fail, ErrorClass::Connect)
    } else if err.is_timeout() {
        (Outcome::Info, ErrorClass::Timeout)
    } else {
        (Outcome::Info, ErrorClass::Io)
    }
}

/// Id and version from a `Location` (`[base/]Type/id[/_history/v]`, absolute or relative).
pub fn parse_location(location: &str, resource_type: &str) -> (Option<String>, Option<String>) {
    let path = location
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    let Some(at) = parts.iter().rposition(|p| *p == resource_type) else {
        return (None, None);
    };
    let id = parts
        .get(at + 1)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string());
    let version = match (parts.get(at + 2), parts.get(at + 3)) {
        (Some(&"_history"), Some(v)) if !v.is_empty() => Some(v.to_string()),
        _ => None,
    };
    (id, version)
}

/// The version in an `ETag` (`W/"3"`, `"3"`, `W/"a-b"`), as an opaque string.
pub fn parse_etag(etag: &str) -> Option<String> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let t = t.trim_matches('"');
    (!t.is_empty()).then(|| t.to_owned())
}

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

/// What a Bundle (searchset or history) showed: its resources and the `next` link.
pub struct BundleView {
    pub seen: Vec<Seen>,
    pub total: Option<u64>,
    pub next: Option<String>,
}

/// Reads a Bundle. Entries with `search.mode = include` or `outcome` are not matches.
pub fn bundle(body: &Value, prefix: &str) -> BundleView {
    let seen = body
        .get("entry")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter(|e| {
                    e.pointer("/search/mode")
                        .and_then(Value::as_str)
                        .is_none_or(|m| m == "match")
                })
                .filter_map(|e| e.get("resource"))
                .filter_map(|r| seen(r, prefix))
                .collect()
        })
        .unwrap_or_default();
    let next = body
        .get("link")
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
        })
        .and_then(|l| l.get("url")?.as_str().map(str::to_owned));
    BundleView {
        seen,
        total: body.get("total").and_then(Value::as_u64),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locations_absolute_relative_and_versionless() {
        assert_eq!(
            parse_location(
                "https://ehr.example/fhir/R4/Observation/e5Tk.9-x/_history/7",
                "Observation"
            ),
            (Some("e5Tk.9-x".into()), Some("7".into()))
        );
        assert_eq!(
            parse_location("Observation/abc", "Observation"),
            (Some("abc".into()), None)
        );
        assert_eq!(parse_location("Patient/abc", "Observation"), (None, None));
    }

    #[test]
    fn etags_stay_opaque() {
        assert_eq!(parse_etag("W/\"3\""), Some("3".into()));
        assert_eq!(parse_etag("\"a1b2-c3\""), Some("a1b2-c3".into()));
        assert_eq!(parse_etag("W/\"\""), None);
    }

    #[test]
    fn status_classes() {
        use Interaction::*;
        assert_eq!(classify_status(Create, 201).0, Outcome::Ok);
        assert_eq!(classify_status(Read, 404).0, Outcome::Ok);
        assert_eq!(classify_status(Create, 404).0, Outcome::Fail);
        assert_eq!(
            classify_status(Update, 412),
            (Outcome::Fail, Some(ErrorClass::Conflict))
        );
        assert_eq!(classify_status(Create, 500).0, Outcome::Info);
        assert_eq!(classify_status(Create, 502).0, Outcome::Info);
        assert_eq!(classify_status(Create, 429).0, Outcome::Fail);
    }

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

    #[test]
    fn bundle_keeps_matches_and_next() {
        let b = json!({"resourceType": "Bundle", "total": 2, "link": [{"relation": "next", "url": "http://h/x?page=2"}],
        "entry": [
            {"resource": {"resourceType": "Observation", "id": "1", "meta": {"versionId": "2"},
                          "identifier": [{"system": "urn:fhirsurge:r", "value": "o1"}]}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Patient", "id": "p"}, "search": {"mode": "include"}}
        ]});
        let v = bundle(&b, "urn:fhirsurge:");
        assert_eq!(v.seen.len(), 1);
        assert_eq!(
            v.seen[0].identifiers,
            vec!["urn:fhirsurge:r|o1".to_string()]
        );
        assert!(v.seen[0].content.is_some());
        assert_eq!(v.next.as_deref(), Some("http://h/x?page=2"));
        assert_eq!(v.total, Some(2));
    }
}
