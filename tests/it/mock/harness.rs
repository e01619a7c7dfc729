//! The harness's own FHIR client against the mock: every answer is classified `ok`, ids
//! and versions are read from it, and what comes back has the content that was sent.

use std::time::{Duration, Instant};

use fhirsurge::fhir::{Client, Ctx, Retry, Settings};
use fhirsurge::history::{Content, ErrorClass, Outcome};

use super::{SYSTEM, observation, patient, start};

#[tokio::test]
async fn the_harness_client_reads_every_answer_and_content_survives() {
    let m = start(vec![]).await;
    let (recorder, _notes) = fhirsurge::fhir::Recorder::new(Instant::now(), 1024);
    let settings = Settings {
        base: url::Url::parse(&m.base).unwrap(),
        timeout: Duration::from_secs(5),
        retry: Retry::default(),
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: Some("return=representation".into()),
        ledger: None,
        auth: Default::default(),
        tls: Default::default(),
    };
    let client = Client::new(settings, recorder).unwrap();
    let ctx = Ctx::default();
    let identifier = format!("{SYSTEM}|hc1");
    let sent = patient("hc1");

    let created = client.create(ctx, &sent, &identifier, true).await;
    assert_eq!(created.outcome, Some(Outcome::Ok));
    let id = created.id.clone().unwrap();
    assert_eq!(created.version.as_deref(), Some("1"));
    let again = client.create(ctx, &sent, &identifier, true).await;
    assert_eq!(
        (again.status, again.id.as_deref()),
        (Some(200), Some(id.as_str()))
    );

    let read = client.read(ctx, "Patient", &id).await;
    assert_eq!(read.seen.len(), 1);
    let back = read.seen[0].content.as_ref().unwrap();
    assert!(
        Content::of(&sent).differences(back, &[]).is_empty(),
        "content survives the round trip"
    );

    let mut changed = read.body.clone().unwrap();
    changed["gender"] = "male".into();
    let updated = client.update(ctx, &changed, &id, Some("1")).await;
    assert_eq!(
        (updated.outcome, updated.version.as_deref()),
        (Some(Outcome::Ok), Some("2"))
    );
    let stale = client.update(ctx, &changed, &id, Some("1")).await;
    assert_eq!(
        (stale.outcome, stale.error),
        (Some(Outcome::Fail), Some(ErrorClass::Conflict))
    );

    let found = client
        .search(
            ctx,
            "Patient",
            &[("identifier", identifier.as_str())],
            Some(&identifier),
        )
        .await;
    assert_eq!(found.outcome, Some(Outcome::Ok));
    assert_eq!(found.seen.len(), 1);
    assert_eq!(found.seen[0].version.as_deref(), Some("2"));
    let history = client.history(ctx, "Patient", &id).await;
    let versions: Vec<_> = history
        .seen
        .iter()
        .map(|s| s.version.clone().unwrap())
        .collect();
    assert_eq!(versions, ["2", "1"]);

    let obs = observation("hc1-obs", &format!("Patient/{id}"), "8867-4");
    let o = client
        .create(ctx, &obs, &format!("{SYSTEM}|hc1-obs"), false)
        .await;
    assert_eq!(o.status, Some(201));
    let page = client
        .search(
            ctx,
            "Observation",
            &[("patient", &format!("Patient/{id}")), ("_count", "20")],
            None,
        )
        .await;
    assert_eq!(page.seen.len(), 1);
    assert!(
        Content::of(&obs)
            .differences(page.seen[0].content.as_ref().unwrap(), &[])
            .is_empty()
    );
    let missing = client.read(ctx, "Patient", "not-there").await;
    assert_eq!(
        (missing.outcome, missing.status),
        (Some(Outcome::Ok), Some(404))
    );
}
