//! Paging as each EHR pages: expiring sessions, result caps, repeated entries and short
//! pages, offset and page-number links, page sizes.

use std::collections::HashSet;

use super::*;

fn procedure(value: &str, patient: &str) -> Value {
    json!({"resourceType": "Procedure", "status": "completed", "identifier": identifier(value),
           "subject": {"reference": format!("Patient/{patient}")}, "code": {"text": "x"}})
}

async fn procedures(m: &Mock, patient: &str, n: usize) {
    for i in 0..n {
        let a = m
            .post("Procedure", &procedure(&format!("{patient}-{i}"), patient))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
}

fn unique(pages: &[Answer]) -> HashSet<String> {
    pages.iter().flat_map(Answer::ids).collect()
}

#[tokio::test]
async fn an_expired_paging_session_answers_the_declared_error() {
    let m = start(Some(overlaid("epic", "[paging]\nexpires_after = \"1s\"\n"))).await;
    procedures(&m, "p1", 5).await;
    let first = m.get("Procedure?patient=p1&_count=2").await;
    assert_eq!(first.ids().len(), 2);
    let next = first.next().unwrap();
    assert!(
        next.contains("patient=p1") && next.contains("sessionID="),
        "{next}"
    );
    let expired = m.until(&next, |a| a.status != StatusCode::OK).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(expired.vendor_code(), "4113");
    assert_eq!(expired.issue()["code"], "expired");
    assert_eq!(expired.issue()["severity"], "fatal");
    let again = m.get("Procedure?patient=p1&_count=2").await;
    assert_eq!(
        (again.status, again.ids().len()),
        (StatusCode::OK, 2),
        "re-issued"
    );

    let fresh = start(Some(profile("epic"))).await;
    procedures(&fresh, "p1", 5).await;
    let pages = fresh.walk("Procedure?patient=p1&_count=2").await;
    assert_eq!(pages.len(), 3, "sessions live long without an overlay");
    assert_eq!(unique(&pages).len(), 5);
}

#[tokio::test]
async fn result_caps_refuse_or_truncate_with_a_warning() {
    let m = start(Some(profile("epic"))).await;
    for i in 0..101 {
        let p = json!({"resourceType": "Patient", "identifier": identifier(&format!("cap{i}")),
                       "name": [{"family": format!("Cap{i}")}], "birthDate": "1970-01-01",
                       "gender": "male"});
        assert_eq!(m.post("Patient", &p).await.status, StatusCode::CREATED);
    }
    let refused = m.get(&format!("Patient?identifier={SYSTEM}|")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.vendor_code(), "4127");
    assert_eq!(refused.issue()["code"], "too-costly");

    procedures(&m, "p2", 101).await;
    let pages = m.walk("Procedure?patient=p2&_count=40").await;
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p.body["total"] == 100));
    assert_eq!(unique(&pages).len(), 100, "truncated at the cap");
    let warning = pages[0].body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("a warning entry");
    let issue = &warning["resource"]["issue"][0];
    assert_eq!(issue["severity"], "information");
    assert_eq!(issue["details"]["coding"][0]["code"], "59133");
}

fn oracle_condition(value: &str, patient: &str) -> Value {
    json!({"resourceType": "Condition", "identifier": identifier(value),
           "clinicalStatus": {"coding": [{"code": "active"}]},
           "category": [{"coding": [{"code": "problem-list-item"}]}],
           "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
}

#[tokio::test]
async fn oracle_repeats_an_entry_at_the_top_of_the_next_page_and_runs_short() {
    let m = start(Some(profile("oracle-health"))).await;
    for i in 0..7 {
        let a = m
            .post("Condition", &oracle_condition(&format!("c{i}"), "p3"))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let pages = m.walk("Condition?patient=p3&_count=3").await;
    let lens: Vec<usize> = pages.iter().map(|p| p.ids().len()).collect();
    assert_eq!(lens, [3, 2, 2, 2, 2], "short pages after the first");
    for pair in pages.windows(2) {
        assert_eq!(
            pair[0].ids().last(),
            pair[1].ids().first(),
            "repeated at the top"
        );
    }
    assert!(pages[0].next().unwrap().contains("pageContext="));
    assert_eq!(unique(&pages).len(), 7, "nothing lost");

    for i in 0..3 {
        let vital = json!({"resourceType": "Observation", "status": "final",
            "identifier": identifier(&format!("v{i}")),
            "category": [{"coding": [{"code": "vital-signs"}]}], "code": {"text": "pulse"},
            "subject": {"reference": "Patient/p3"}, "effectiveDateTime": "2026-01-01T10:00:00Z",
            "valueQuantity": {"value": 70}, "performer": [{"reference": "Practitioner/1"}]});
        assert_eq!(
            m.post("Observation", &vital).await.status,
            StatusCode::CREATED
        );
    }
    let first = m.get("Observation?patient=p3&_count=2").await;
    assert_eq!(first.ids().len(), 3, "the first page ignores _count");
}

#[tokio::test]
async fn page_number_and_offset_links() {
    let m = start(Some(profile("eclinicalworks"))).await;
    for i in 0..5 {
        let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
                        "identifier": identifier(&format!("q{i}")),
                        "subject": {"reference": "Patient/p6"}});
        assert_eq!(
            m.post("QuestionnaireResponse", &qr).await.status,
            StatusCode::CREATED
        );
    }
    let pages = m.walk("QuestionnaireResponse?patient=p6&_count=2").await;
    assert_eq!(pages.len(), 3);
    assert!(pages[0].next().unwrap().ends_with("page=2"));
    assert!(pages[1].next().unwrap().ends_with("page=3"));
    assert_eq!(unique(&pages).len(), 5);

    let overlay = "[paging]\nstyle = \"offset\"\nparam = \"_getpagesoffset\"\nover_max = \"reject\"\nover_max_error = \"invalid_search\"\n";
    let m = start(Some(overlaid("us-core", overlay))).await;
    procedures(&m, "p7", 5).await;
    let pages = m.walk("Procedure?patient=p7&_count=2").await;
    assert!(pages[1].next().unwrap().ends_with("_getpagesoffset=4"));
    assert_eq!(unique(&pages).len(), 5);
    let too_many = m.get("Procedure?patient=p7&_count=201").await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_many.issue()["code"], "invalid");
    assert_eq!(m.get("Procedure?patient=p7").await.ids().len(), 5);
}
