//! Refusals in each EHR's own shape: unsupported interactions, required search
//! parameters, the tenancy parameter; and `serve-mock --profile`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::*;

#[tokio::test]
async fn epic_refuses_what_it_lacks_with_its_envelope_and_codes() {
    let m = start(Some(profile("epic"))).await;
    let encounter = json!({"resourceType": "Encounter", "status": "in-progress",
                           "subject": {"reference": "Patient/p1"}});
    let a = m.post("Encounter", &encounter).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.issue()["code"], "not-supported");
    assert!(
        a.issue()["diagnostics"]
            .as_str()
            .unwrap()
            .contains("create of Encounter")
    );
    assert_eq!(
        m.get("Encounter?patient=p1").await.status,
        StatusCode::OK,
        "search is there"
    );
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": []});
    assert_eq!(
        m.post("", &bundle).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    let missing = m.get("Observation?patient=p1").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.vendor_code(), "4111");
    assert_eq!(missing.issue()["severity"], "fatal");
    assert_eq!(missing.issue()["code"], "required");
    let complete = m.get("Observation?patient=p1&category=vital-signs").await;
    assert_eq!(complete.status, StatusCode::OK);
    let coded = m.get("Observation?patient=p1&code=8867-4").await;
    assert_eq!(coded.status, StatusCode::OK);
}

#[tokio::test]
async fn athenahealth_needs_its_practice_and_a_patient() {
    let m = start(Some(profile("athenahealth"))).await;
    let no_practice = m.get("Encounter?patient=p1").await;
    assert_eq!(no_practice.status, StatusCode::BAD_REQUEST);
    assert!(
        no_practice.body["details"]
            .as_str()
            .unwrap()
            .contains("ah-practice")
    );
    assert_eq!(
        no_practice.content_type.as_deref(),
        Some("application/json")
    );
    let practice = "ah-practice=Organization/a-1.Practice-195900";
    let wide = m.get(&format!("Encounter?{practice}")).await;
    assert_eq!(wide.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (
            wide.issue()["severity"].as_str(),
            wide.issue()["code"].as_str()
        ),
        (Some("fatal"), Some("forbidden"))
    );
    let ok = m.get(&format!("Encounter?{practice}&patient=p1")).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(m.get("metadata").await.status, StatusCode::OK);
    let write = m
        .post(
            &format!("Observation?{practice}"),
            &json!({"resourceType": "Observation"}),
        )
        .await;
    assert_eq!(
        write.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "read/search only"
    );
}

#[test]
fn serve_mock_emulates_the_profile_it_is_given() {
    let bin = env!("CARGO_BIN_EXE_fhirsurge");
    let bad = Command::new(bin)
        .args(["serve-mock", "--listen", "127.0.0.1:0", "--profile", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown profile `nope`"));
    let mut child = Command::new(bin)
        .args(["serve-mock", "--listen", "127.0.0.1:0", "--profile", "epic"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        assert!(line.contains("emulating `epic`"), "{line}");
        let base = line
            .split("FHIR base ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let status = rt.block_on(async {
            reqwest::Client::new()
                .post(format!("{base}Encounter"))
                .json(&json!({"resourceType": "Encounter"}))
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
}
