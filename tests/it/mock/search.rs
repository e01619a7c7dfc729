//! Indexed searches: every parameter the mock supports, and page walks that return
//! every match exactly once.

use std::collections::HashSet;

use super::{SYSTEM, observation, patient, start};

#[tokio::test]
async fn searches_page_through_every_match_exactly_once() {
    let m = start(vec![]).await;
    let p = m.post("Patient", &patient("owner"), 1).await.id();
    let other = m.post("Patient", &patient("other"), 2).await.id();
    let mut expected = HashSet::new();
    for i in 0..45 {
        let code = if i % 3 == 0 { "8310-5" } else { "8867-4" };
        expected.insert(
            m.post(
                "Observation",
                &observation(&format!("o{i}"), &format!("Patient/{p}"), code),
                3,
            )
            .await
            .id(),
        );
    }
    m.post(
        "Observation",
        &observation("x", &format!("Patient/{other}"), "8867-4"),
        4,
    )
    .await;
    let (ids, total) = m
        .search_all(&format!("Observation?patient=Patient/{p}&_count=10"))
        .await;
    assert_eq!(total, 45);
    assert_eq!(ids.len(), 45, "no duplicates across pages");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    let (by_subject, _) = m
        .search_all(&format!("Observation?subject={p}&_count=7"))
        .await;
    assert_eq!(by_subject, ids, "same order, plain id = Patient/id");
    assert_eq!(
        m.total(&format!(
            "Observation?patient=Patient/{p}&code=http://loinc.org|8310-5"
        ))
        .await,
        15
    );
    assert_eq!(m.total("Observation?code=8310-5,8867-4").await, 46);
    assert_eq!(
        m.total(&format!("Observation?identifier={SYSTEM}|o7"))
            .await,
        1
    );
    assert_eq!(m.total("Observation?identifier=o7").await, 1);
    assert_eq!(
        m.total(&format!("Observation?identifier={SYSTEM}|")).await,
        46
    );
    assert_eq!(m.total(&format!("Observation?_id={}", ids[3])).await, 1);
    let count = m
        .get(&format!("Observation?patient={p}&_summary=count"))
        .await
        .body;
    assert_eq!(count["total"], 45);
    assert!(count.get("entry").is_none());
    let default_page = m.get(&format!("Observation?patient={p}")).await.body;
    assert_eq!(default_page["entry"].as_array().unwrap().len(), 20);
    let (newest_first, _) = m
        .search_all(&format!(
            "Observation?patient={p}&_sort=-_lastUpdated&_count=9"
        ))
        .await;
    assert_eq!(newest_first.len(), 45);
    assert_eq!(newest_first.first(), ids.last());
}

#[tokio::test]
async fn a_page_walk_is_stable_while_resources_are_created() {
    let m = start(vec![]).await;
    for i in 0..25 {
        m.post(
            "Observation",
            &observation(&format!("s{i}"), "Patient/walk", "8867-4"),
            1,
        )
        .await;
    }
    let first = m.get("Observation?patient=walk&_count=10").await.body;
    let mut seen: Vec<String> = first["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    for i in 25..30 {
        m.post(
            "Observation",
            &observation(&format!("s{i}"), "Patient/walk", "8867-4"),
            1,
        )
        .await;
    }
    let next = first["link"][1]["url"].as_str().unwrap();
    let (rest, total) = m.search_all(&next[m.base.len()..]).await;
    seen.extend(rest);
    assert_eq!(total, 30);
    assert_eq!(seen.len(), 30);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 30);
}
