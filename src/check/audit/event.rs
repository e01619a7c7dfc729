//! AuditEvents as the reconciliation reads them, from either pattern real servers use:
//! IHE BALP (`type` `rest`, the restful-interaction in `subtype`, the query base64 in
//! `entity.query`) and the older DICOM-typed one (`type` DCM 110110, the interaction in
//! `subtype` or only in `action`). Pure: FHIR JSON in, a compact [`Event`] out.

use base64::Engine;
use serde_json::Value;

/// One event, reduced to what matching needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub id: String,
    /// `recorded`, in microseconds from the run start (negative: before it).
    pub at_us: i64,
    /// Every name the requesting agent goes by (identifier value, reference and its
    /// last segment, display, altId, name).
    pub agents: Vec<String>,
    pub action: Option<u8>,
    /// The restful-interaction code (or whatever code `subtype` holds).
    pub subtype: Option<String>,
    pub outcome: Option<u8>,
    /// `Type/id` of every entity (the Patient included).
    pub entities: Vec<String>,
    pub patient: Option<String>,
    /// The search, normalized: `Type?k=v&…` (`?k=v&…` when the type is not said).
    pub query: Option<String>,
    pub pattern: Pattern,
}

/// Which audit pattern an event follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pattern {
    #[default]
    Balp,
    Dicom,
    /// A token request or login (DCM 110114): not an interaction on a resource.
    Authentication,
    Other,
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// Reads one AuditEvent; `None` when it has no `recorded` time or is not one.
pub fn parse(v: &Value, wall_start_ms: i64) -> Option<Event> {
    if v.get("resourceType")?.as_str()? != "AuditEvent" {
        return None;
    }
    let recorded = v.get("recorded")?.as_str()?;
    let ms = chrono::DateTime::parse_from_rfc3339(recorded)
        .ok()?
        .timestamp_micros();
    let entities = v.get("entity").and_then(Value::as_array);
    let mut event = Event {
        id: text(v, "/id").unwrap_or_default(),
        at_us: ms - wall_start_ms * 1000,
        agents: agents(v),
        action: text(v, "/action").and_then(|a| a.bytes().next()),
        subtype: text(v, "/subtype/0/code"),
        outcome: text(v, "/outcome").and_then(|o| o.parse().ok()),
        pattern: pattern(v),
        ..Event::default()
    };
    for e in entities.into_iter().flatten() {
        entity(&mut event, e);
    }
    Some(event)
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)?.as_str().map(str::to_owned)
}

fn pattern(v: &Value) -> Pattern {
    let system = v.pointer("/type/system").and_then(Value::as_str);
    match (system, v.pointer("/type/code").and_then(Value::as_str)) {
        (_, Some("rest")) => Pattern::Balp,
        (Some(DCM), Some("110110")) => Pattern::Dicom,
        (Some(DCM), Some("110114")) => Pattern::Authentication,
        _ => Pattern::Other,
    }
}

/// Names of the requesting agent (every agent when none says it is the requestor).
fn agents(v: &Value) -> Vec<String> {
    let all = v.get("agent").and_then(Value::as_array);
    let list: Vec<&Value> = all.into_iter().flatten().collect();
    let requestors: Vec<&Value> = list
        .iter()
        .copied()
        .filter(|a| a.get("requestor").and_then(Value::as_bool) == Some(true))
        .collect();
    let chosen = if requestors.is_empty() {
        list
    } else {
        requestors
    };
    let mut names = Vec::new();
    for a in chosen {
        for p in ["/who/identifier/value", "/who/display", "/altId", "/name"] {
            names.extend(text(a, p));
        }
        if let Some(r) = text(a, "/who/reference") {
            names.extend(r.rsplit('/').next().map(str::to_owned));
            names.push(r);
        }
    }
    names
}

fn entity(event: &mut Event, e: &Value) {
    if let Some(q) = e.get("query").and_then(Value::as_str) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(q.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(raw) = decoded {
            let typed = text(e, "/description").filter(|d| is_type(d));
            event.query = Some(normalize_search(typed.as_deref(), &raw));
        }
    }
    let Some(what) = text(e, "/what/reference").and_then(|r| reference(&r)) else {
        return;
    };
    let is_patient_role = text(e, "/role/code").as_deref() == Some("1");
    if what.starts_with("Patient/") && (is_patient_role || event.patient.is_none()) {
        event.patient = Some(what.clone());
    }
    event.entities.push(what);
}

fn is_type(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphabetic())
}

/// `Type/id` of a reference (relative, absolute, versioned); `None` for a bare id.
pub fn reference(r: &str) -> Option<String> {
    let path = r.split(['?', '#']).next()?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let end = match parts.iter().rposition(|p| *p == "_history") {
        Some(h) => h,
        None => parts.len(),
    };
    match parts.get(..end)? {
        [.., rt, id] if is_type(rt) => Some(format!("{rt}/{id}")),
        _ => None,
    }
}

/// A search as `Type?k=v&…` with its parameters decoded and sorted, so that the
/// harness's encoding and the server's record compare equal. `raw` may be a bare query
/// string, `Type?query`, or a whole URL.
pub fn normalize_search(rt: Option<&str>, raw: &str) -> String {
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (Some(p), q),
        None if raw.contains('=') || raw.is_empty() => (None, raw),
        None => (Some(raw), ""),
    };
    let from_path = path.and_then(|p| p.rsplit('/').find(|s| !s.is_empty()).filter(|s| is_type(s)));
    let rt = rt.or(from_path).unwrap_or("");
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{rt}?{}", joined.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_balp_search_event() {
        let v = json!({"resourceType": "AuditEvent", "id": "e1",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "subtype": [{"code": "search-type"}], "action": "E", "outcome": "0",
            "recorded": "2026-01-01T00:00:02.500Z",
            "agent": [{"who": {"identifier": {"value": "app"}}, "requestor": true},
                      {"who": {"display": "server"}, "requestor": false}],
            "entity": [{"query": "cGF0aWVudD1QYXRpZW50JTJGMSZfY291bnQ9NQ==", "description": "Observation"},
                       {"what": {"reference": "https://h/fhir/Patient/1"}, "role": {"code": "1"}}]});
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let e = parse(&v, start.timestamp_millis()).unwrap();
        assert_eq!(e.at_us, 2_500_000);
        assert_eq!(e.agents, ["app"]);
        assert_eq!(e.action, Some(b'E'));
        assert_eq!(e.pattern, Pattern::Balp);
        assert_eq!(e.patient.as_deref(), Some("Patient/1"));
        assert_eq!(
            e.query.as_deref(),
            Some("Observation?_count=5&patient=Patient/1")
        );
    }

    #[test]
    fn a_dicom_typed_event_with_the_interaction_in_action_only() {
        let v = json!({"resourceType": "AuditEvent",
            "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
            "action": "R", "recorded": "2026-01-01T00:00:00Z",
            "agent": [{"who": {"reference": "Device/app"}}],
            "entity": [{"what": {"reference": "Observation/9/_history/2"}}]});
        let e = parse(&v, 0).unwrap();
        assert_eq!(e.pattern, Pattern::Dicom);
        assert_eq!(e.subtype, None);
        assert_eq!(e.entities, ["Observation/9"]);
        assert!(e.agents.contains(&"app".to_owned()));
        assert!(parse(&json!({"resourceType": "Patient"}), 0).is_none());
    }

    #[test]
    fn searches_normalize_alike() {
        let a = normalize_search(Some("Observation"), "patient=Patient%2F1&_count=20");
        let b = normalize_search(
            None,
            "http://h/fhir/Observation?_count=20&patient=Patient/1",
        );
        assert_eq!(a, b);
        assert_eq!(reference("Patient/x"), Some("Patient/x".into()));
        assert_eq!(reference("x"), None);
    }
}
