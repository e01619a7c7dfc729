//! Transaction and batch Bundles.

use reqwest::StatusCode;
use serde_json::json;

use super::{SYSTEM, observation, patient, start, transaction};

#[tokio::test]
async fn a_transaction_resolves_urn_references_and_is_all_or_nothing() {
    let m = start(vec![]).await;
    let ok = transaction(json!([
        {"fullUrl": "urn:uuid:0b1b8c8e-0000-4000-8000-000000000001", "resource": patient("t1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation("t1-obs", "urn:uuid:0b1b8c8e-0000-4000-8000-000000000001", "8867-4"), "request": {"method": "POST", "url": "Observation"}}
    ]));
    let a = m.post("", &ok, 1).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["type"], "transaction-response");
    let entries = a.body["entry"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["response"]["status"].as_str().unwrap().starts_with("201"))
    );
    let patient_loc = entries[0]["response"]["location"].as_str().unwrap();
    let patient_id = patient_loc.split('/').nth(1).unwrap();
    let obs_id = entries[1]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    let obs = m.get(&format!("Observation/{obs_id}")).await.body;
    assert_eq!(obs["subject"]["reference"], format!("Patient/{patient_id}"));
    assert_eq!(
        m.total(&format!("Observation?patient={patient_id}")).await,
        1
    );

    let again = transaction(json!([
        {"resource": patient("t1"), "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={SYSTEM}|t1")}},
    ]));
    let a = m.post("", &again, 2).await;
    assert_eq!(
        a.body["entry"][0]["response"]["status"], "200 OK",
        "ifNoneExist matched"
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|t1")).await, 1);

    let mut stale = obs.clone();
    stale["status"] = json!("amended");
    let failing = transaction(json!([
        {"resource": patient("t2"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": stale, "request": {"method": "PUT", "url": format!("Observation/{obs_id}"), "ifMatch": "W/\"7\""}}
    ]));
    let a = m.post("", &failing, 3).await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{}", a.body);
    assert!(
        a.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("entry[1]")
    );
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|t2")).await,
        0,
        "nothing applied"
    );
    assert_eq!(
        m.get(&format!("Observation/{obs_id}")).await.body["status"],
        "final"
    );
    let invalid = transaction(json!([
        {"resource": patient("t3"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}}
    ]));
    assert_eq!(
        m.post("", &invalid, 4).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|t3")).await, 0);
}

#[tokio::test]
async fn batch_entries_succeed_or_fail_on_their_own() {
    let m = start(vec![]).await;
    let existing = m.post("Patient", &patient("b0"), 1).await.id();
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("b1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": format!("Patient/{existing}")}},
        {"request": {"method": "GET", "url": format!("Patient?identifier={SYSTEM}|b0")}},
        {"request": {"method": "GET", "url": "Patient/missing"}},
    ]});
    let a = m.post("", &batch, 2).await;
    assert_eq!(a.body["type"], "batch-response");
    let statuses: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["response"]["status"].as_str().unwrap()[..3])
        .collect();
    assert_eq!(statuses, ["201", "400", "200", "200", "404"]);
    assert_eq!(a.body["entry"][2]["resource"]["id"], existing.as_str());
    assert_eq!(a.body["entry"][3]["resource"]["total"], 1);
    assert_eq!(
        a.body["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|b1")).await, 1);
}
