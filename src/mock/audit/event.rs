//! One compact audit entry rendered as a FHIR R4 AuditEvent after IHE BALP: `type`
//! `rest` (or DCM 110114 User Authentication for a token request), `subtype` the
//! restful-interaction code, `action`, `recorded`, `outcome`, the client agent (who,
//! network address, requestor) and the server agent, `source`, and the entities: the
//! resource, the Patient it is about, the query of a search (base64). Pure.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Code, Entry};

const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// The id of the event at `position` in the trail.
pub fn id(position: usize) -> String {
    format!("ae-{position}")
}

/// The position an id names, if it is one of ours.
pub fn position(id: &str) -> Option<usize> {
    id.strip_prefix("ae-")?.parse().ok()
}

/// `recorded`: RFC 3339, milliseconds, UTC.
pub fn instant(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The AuditEvent.
pub fn render(position: usize, e: &Entry) -> Value {
    let (kind, subtype) = match e.code {
        Code::Token => (
            json!({"system": DCM, "code": "110114", "display": "User Authentication"}),
            Value::Null,
        ),
        code => (
            json!({"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}),
            json!([{"system": INTERACTION, "code": code.as_str()}]),
        ),
    };
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": id(position),
        "type": kind,
        "action": char::from(e.action).to_string(),
        "recorded": instant(e.at_ms),
        "outcome": e.outcome.to_string(),
        "agent": agents(e),
        "source": {
            "observer": {"display": "fhirsurge mock EHR"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                      "code": "4", "display": "Application Server"}]
        },
    });
    if !subtype.is_null() {
        event["subtype"] = subtype;
    }
    let entities = entities(e);
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    event
}

fn agents(e: &Entry) -> Value {
    let mut client = json!({
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {"identifier": {"value": &*e.agent}, "display": &*e.agent},
        "requestor": true,
    });
    if let Some(address) = e.address {
        client["network"] = json!({"address": address.to_string(), "type": "2"});
    }
    let server = json!({
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": "fhirsurge mock EHR"},
        "requestor": false,
    });
    json!([client, server])
}

fn entities(e: &Entry) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(what) = &e.what {
        // A search names its resource type only: the query entity says what it asked.
        if what.contains('/') {
            out.push(json!({
                "what": {"reference": &**what},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }));
        }
    }
    if let Some(query) = &e.query {
        let encoded = base64::engine::general_purpose::STANDARD.encode(query.as_bytes());
        let mut q = json!({
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
            "query": encoded,
        });
        if let Some(what) = &e.what {
            q["description"] = Value::String(what.to_string());
        }
        out.push(q);
    }
    if let Some(patient) = &e.patient {
        out.push(json!({
            "what": {"reference": &**patient},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_search_event_carries_its_query_and_patient() {
        let e = Entry {
            at_ms: 1_700_000_000_123,
            code: Code::SearchType,
            action: b'E',
            outcome: 0,
            agent: Arc::from("client-1"),
            address: Some("127.0.0.1".parse().unwrap()),
            what: Some("Observation".into()),
            patient: Some("Patient/p1".into()),
            query: Some("patient=Patient%2Fp1".into()),
        };
        let v = render(3, &e);
        assert_eq!(v["id"], "ae-3");
        assert_eq!(v["subtype"][0]["code"], "search-type");
        assert_eq!(v["action"], "E");
        assert_eq!(v["recorded"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["agent"][0]["who"]["identifier"]["value"], "client-1");
        assert_eq!(v["agent"][0]["network"]["address"], "127.0.0.1");
        let ents = v["entity"].as_array().unwrap();
        assert_eq!(ents.len(), 2, "query and patient: {v}");
        assert_eq!(ents[0]["query"], "cGF0aWVudD1QYXRpZW50JTJGcDE=");
        assert_eq!(ents[1]["what"]["reference"], "Patient/p1");
        assert_eq!(position("ae-3"), Some(3));
    }
}
