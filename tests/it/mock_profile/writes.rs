//! Writes as each EHR answers them: create answers, If-Match, holding areas, replays,
//! and the declared drops, rewrites, truncations and remaps.

use std::collections::BTreeSet;

use super::*;

fn epic_condition(value: &str, patient: &str) -> Value {
    json!({"resourceType": "Condition", "identifier": identifier(value),
           "subject": {"reference": format!("Patient/{patient}")},
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003",
                                "display": "Hypertension"}]}})
}

#[tokio::test]
async fn epic_creates_answer_201_with_no_body_a_relative_location_and_no_etag() {
    let m = start(Some(profile("epic"))).await;
    let a = m.post("Condition", &epic_condition("e1", "p1")).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body, Value::Null, "empty body");
    assert_eq!((a.etag.as_deref(), a.content_type.as_deref()), (None, None));
    let id = a.id();
    assert_eq!(
        a.location.as_deref(),
        Some(format!("Condition/{id}").as_str())
    );
    let asked = m
        .send(
            m.http
                .post(m.url("Condition"))
                .header("prefer", "return=representation")
                .json(&epic_condition("e2", "p1")),
        )
        .await;
    assert_eq!(asked.status, StatusCode::CREATED);
    assert_eq!(
        asked.body["resourceType"], "Condition",
        "Prefer is honoured"
    );
    assert!(!asked.location.unwrap().starts_with("http"));
    let read = m.get(&format!("Condition/{id}")).await;
    assert_eq!((read.status, read.etag), (StatusCode::OK, None));
    let note = json!({"resourceType": "Procedure", "status": "completed", "code": {"text": "x"},
                      "subject": {"reference": "Patient/p1"}});
    let created = m.post("Procedure", &note).await;
    let mut again = note.clone();
    again["id"] = json!(created.id());
    let path = format!("Procedure/{}", created.id());
    let blind = m.put(&path, &again, Some("W/\"99\"")).await;
    assert_eq!(
        blind.status,
        StatusCode::OK,
        "If-Match is not supported: last writer wins"
    );
}

#[tokio::test]
async fn oracle_creates_answer_empty_html_with_an_opaque_etag_and_updates_need_if_match() {
    let m = start(Some(profile("oracle-health"))).await;
    let c = json!({"resourceType": "AllergyIntolerance", "identifier": identifier("a1"),
                   "clinicalStatus": {"coding": [{"code": "active"}]},
                   "patient": {"reference": "Patient/p1"}});
    let a = m
        .send(
            m.http
                .post(m.url("AllergyIntolerance"))
                .header("prefer", "return=representation")
                .json(&c),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body, Value::Null, "Prefer is not honoured");
    assert_eq!(a.content_type.as_deref(), Some("text/html"));
    assert!(
        a.location.as_deref().unwrap().starts_with(&m.base),
        "absolute"
    );
    assert!(!a.location.as_deref().unwrap().contains("_history"));
    assert_eq!(a.etag.as_deref(), Some("W/\"0$0\""));
    let path = format!("AllergyIntolerance/{}", a.id());
    let mut body = c.clone();
    body["id"] = json!(a.id());
    let missing = m.put(&path, &body, None).await;
    assert_eq!(
        (missing.status, missing.issue()["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("conflict"))
    );
    let ok = m.put(&path, &body, Some("W/\"0$0\"")).await;
    assert_eq!(
        (ok.status, ok.etag.as_deref()),
        (StatusCode::OK, Some("W/\"1$0\""))
    );
    let stale = m.put(&path, &body, Some("W/\"0$0\"")).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.issue()["code"], "conflict");
}

#[tokio::test]
async fn holding_areas_keep_creates_out_of_search_until_released() {
    let overlay = "[resources.Condition.write]\nvisible_after = \"300ms\"\n";
    let m = start(Some(overlaid("epic", overlay))).await;
    let a = m.post("Condition", &epic_condition("h1", "p4")).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        m.get(&format!("Condition/{}", a.id())).await.status,
        StatusCode::OK,
        "readable by id"
    );
    let allergy = json!({"resourceType": "AllergyIntolerance", "identifier": identifier("h2"),
                         "patient": {"reference": "Patient/p4"}, "code": {"text": "latex"}});
    let held = m.post("AllergyIntolerance", &allergy).await;
    assert_eq!(held.status, StatusCode::CREATED);
    assert_eq!(
        m.get(&format!("AllergyIntolerance/{}", held.id()))
            .await
            .status,
        StatusCode::OK
    );
    m.ehr.set_faults_enabled(false);
    let shown = m
        .until("Condition?patient=p4", |a| !a.ids().is_empty())
        .await;
    assert_eq!(shown.ids(), [a.id()], "released after visible_after");
    let never = m.get("AllergyIntolerance?patient=p4").await;
    assert_eq!(
        never.body["total"], 0,
        "unreconciled: never in search, healed or not"
    );
    assert!(
        m.ehr.ledger().entries().is_empty(),
        "declared behaviour is not a fault"
    );
}

#[tokio::test]
async fn declared_drops_rewrites_truncations_and_remaps_are_stored_and_not_faults() {
    let epic = profile("epic");
    let expected = epic.expected_changes();
    let m = start(Some(epic)).await;
    let allergy = json!({"resourceType": "AllergyIntolerance", "identifier": identifier("d1"),
        "category": ["food"], "recordedDate": "2026-01-01", "patient": {"reference": "Patient/p5"},
        "code": {"text": "as typed", "coding": [{"code": "91935009", "display": "Peanut allergy"}]}});
    let note = json!({"resourceType": "Condition", "identifier": identifier("d2"),
        "subject": {"reference": "Patient/p5"}, "code": {"text": "x"},
        "note": [{"text": "n".repeat(500)}, {"text": "second"}]});
    let stored_allergy = stored(&m, "AllergyIntolerance", &allergy).await;
    assert!(
        stored_allergy.get("category").is_none() && stored_allergy.get("recordedDate").is_none()
    );
    assert_eq!(stored_allergy["code"]["text"], "Peanut allergy");
    let stored_note = stored(&m, "Condition", &note).await;
    assert_eq!(stored_note["note"].as_array().unwrap().len(), 1);
    assert_eq!(stored_note["note"][0]["text"].as_str().unwrap().len(), 450);
    for (rt, sent, got) in [
        ("AllergyIntolerance", &allergy, &stored_allergy),
        ("Condition", &note, &stored_note),
    ] {
        let changed = differing(sent, got);
        let allowed: BTreeSet<String> = expected[rt].iter().cloned().collect();
        assert!(
            changed.is_subset(&allowed),
            "{rt}: {changed:?} ⊄ {allowed:?}"
        );
        assert!(!changed.is_empty());
    }
    assert!(m.ehr.ledger().entries().is_empty());

    let oracle = start(Some(profile("oracle-health"))).await;
    let med = json!({"resourceType": "MedicationRequest", "identifier": identifier("d3"),
        "status": "active", "intent": "plan", "reportedBoolean": true,
        "subject": {"reference": "Patient/p5"}, "medicationCodeableConcept": {"text": "x"}});
    assert_eq!(
        stored(&oracle, "MedicationRequest", &med).await["intent"],
        "order",
        "remapped"
    );
    assert!(oracle.ehr.ledger().entries().is_empty());
}

/// Creates and reads back.
async fn stored(m: &Mock, rt: &str, body: &Value) -> Value {
    let a = m.post(rt, body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let read = m.get(&format!("{rt}/{}", a.id())).await;
    assert_eq!(read.status, StatusCode::OK);
    read.body
}

/// Top-level elements that differ between what was sent and what is stored.
fn differing(sent: &Value, got: &Value) -> BTreeSet<String> {
    let (s, g) = (sent.as_object().unwrap(), got.as_object().unwrap());
    s.keys()
        .chain(g.keys())
        .filter(|k| !matches!(k.as_str(), "id" | "meta"))
        .filter(|k| s.get(*k) != g.get(*k))
        .cloned()
        .collect()
}

#[tokio::test]
async fn replays_are_refused_or_answered_with_the_existing_record() {
    let overlay = "[resources.Encounter]\ninteractions = [\"read\", \"search\", \"create\"]\n";
    let m = start(Some(overlaid("epic", overlay))).await;
    let encounter = |status: &str| {
        json!({"resourceType": "Encounter", "status": status, "class": {"code": "AMB"},
               "subject": {"reference": "Patient/p9"}})
    };
    let open = m.post("Encounter", &encounter("in-progress")).await.id();
    let closed = m.post("Encounter", &encounter("finished")).await.id();
    let vital = |enc: &str, value: &str| {
        json!({"resourceType": "Observation", "status": "final", "identifier": identifier(value),
               "category": [{"coding": [{"code": "vital-signs"}]}],
               "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
               "subject": {"reference": "Patient/p9"}, "encounter": {"reference": format!("Encounter/{enc}")},
               "effectiveDateTime": "2026-01-01T10:00:00Z", "valueQuantity": {"value": 72}})
    };
    assert_eq!(
        m.post("Observation", &vital(&open, "r1")).await.status,
        StatusCode::CREATED
    );
    let replay = m.post("Observation", &vital(&open, "r1")).await;
    assert_eq!(
        (replay.status, replay.vendor_code()),
        (StatusCode::BAD_REQUEST, "59189")
    );
    let late = m.post("Observation", &vital(&closed, "r2")).await;
    assert_eq!(late.vendor_code(), "59159", "a closed encounter");
    let mut lab = vital(&open, "r3");
    lab["category"] = json!([{"coding": [{"code": "laboratory"}]}]);
    assert_eq!(m.post("Observation", &lab).await.vendor_code(), "59111");

    let patient = |value: &str| {
        json!({"resourceType": "Patient", "identifier": identifier(value),
               "name": [{"family": "Lopez", "given": ["Camila"]}], "birthDate": "1987-09-12",
               "gender": "female"})
    };
    let first = m.post("Patient", &patient("pa")).await;
    let second = m.post("Patient", &patient("pb")).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(
        first.id(),
        second.id(),
        "match-or-create answers the existing patient"
    );
}
