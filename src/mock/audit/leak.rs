//! The `leak` fault: a search scoped to one patient also returns the latest resource of
//! the same type written for another patient, spliced into the searchset as a match.
//! Every leak is in the ledger with the resource leaked and the request it touched.

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use serde_json::{Value, json};

use super::layer::scoped_patient;
use crate::mock::Shared;
use crate::mock::silent::Kind;
use crate::vocab::ledger as fault;

/// The largest search answer the fault rewrites.
const LIMIT: usize = 64 << 20;

/// Lets a fired `leak` add another patient's resource to a patient-scoped search answer.
pub async fn maybe(
    shared: &Shared,
    rt: &str,
    query: Option<&str>,
    request: Option<&str>,
    resp: Response,
) -> Response {
    let Some(patient) = scoped_patient(rt, query.unwrap_or("")).filter(|_| rt != "Patient") else {
        return resp;
    };
    let elapsed = shared.ledger.elapsed();
    let fired = shared
        .faults
        .iter()
        .find(|f| f.kind == Kind::Leak && f.applies_to(rt) && f.decide(shared.seed, elapsed));
    let Some(f) = fired else {
        return resp;
    };
    let Some((id, other)) = shared.audit.other_patients(rt, &patient) else {
        return resp;
    };
    let Some(version) = shared.store.get(rt, &id).and_then(|r| r.current()) else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, LIMIT).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Some(spliced) = splice(&bytes, rt, &id, &version.body) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    shared.ledger.record(fault::Entry {
        fault: f.label.clone(),
        kind: f.name().to_owned(),
        resource_type: Some(rt.to_owned()),
        id: Some(id.clone()),
        identifier: version.identifier.clone(),
        request: request.map(str::to_owned),
        detail: format!("a search scoped to {patient} also returned {rt}/{id} of {other}"),
        ..fault::Entry::default()
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(spliced))
}

/// The searchset with one more match; `None` when the answer is not a Bundle.
fn splice(bundle: &[u8], rt: &str, id: &str, resource: &[u8]) -> Option<Vec<u8>> {
    let mut b: Value = serde_json::from_slice(bundle).ok()?;
    let resource: Value = serde_json::from_slice(resource).ok()?;
    let entry = json!({
        "fullUrl": format!("{rt}/{id}"),
        "resource": resource,
        "search": {"mode": "match"},
    });
    let obj = b.as_object_mut()?;
    match obj.get_mut("entry").and_then(Value::as_array_mut) {
        Some(entries) => entries.insert(0, entry),
        None => {
            obj.insert("entry".into(), json!([entry]));
        }
    }
    if let Some(total) = obj.get("total").and_then(Value::as_u64) {
        obj.insert("total".into(), json!(total + 1));
    }
    serde_json::to_vec(&b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaked_resource_is_a_match_and_counted() {
        let b = br#"{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"resource":{"id":"a"}}]}"#;
        let out: Value =
            serde_json::from_slice(&splice(b, "Observation", "z", br#"{"id":"z"}"#).unwrap())
                .unwrap();
        assert_eq!(out["total"], 2);
        assert_eq!(out["entry"][0]["resource"]["id"], "z");
        assert_eq!(out["entry"][0]["search"]["mode"], "match");
        let empty = br#"{"resourceType":"Bundle","type":"searchset"}"#;
        let out: Value =
            serde_json::from_slice(&splice(empty, "Observation", "z", br#"{"id":"z"}"#).unwrap())
                .unwrap();
        assert_eq!(out["entry"].as_array().unwrap().len(), 1);
        assert!(splice(b"not json", "Observation", "z", b"{}").is_none());
    }
}
