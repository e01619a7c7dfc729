//! The runner in each EHR's dialect: against a wiremock server shaped like Epic (empty
//! 201s with relative Locations and no ETag, Observation searches refused without
//! `category`/`code`, an expiring paging session, no Encounter create), and against the
//! plain built-in mock with every shipped profile (no findings, no failures, every
//! replacement and skip counted in the report).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fhirsurge::check;
use fhirsurge::fhir::{Client, Recorder, Retry, Settings};
use fhirsurge::profile::{self, Profile};
use fhirsurge::report::mapping::{Action, Mapping};
use fhirsurge::run::recheck::{self, Source};
use fhirsurge::run::workflow::{Mapper, Workflow};
use fhirsurge::scenario::Step;
use fhirsurge::synth::{CodeTables, Population};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const EPIC_MRN: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14";

fn bundle(entries: &[Value], next: Option<String>) -> Value {
    let mut b = json!({"resourceType": "Bundle", "type": "searchset",
        "entry": entries.iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()});
    if let Some(url) = next {
        b["link"] = json!([{"relation": "next", "url": url}]);
    }
    b
}

fn epic_error(code: &str, vendor: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"resourceType": "OperationOutcome", "issue": [{
        "severity": "fatal", "code": code,
        "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": vendor}]}}]}))
}

/// A 201 the way Epic answers without `Prefer`: no body, a relative Location, no ETag.
fn epic_created(rt: &str, id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).insert_header("Location", format!("{rt}/{id}").as_str())
}

/// An Epic-shaped server for one encounter of one patient.
async fn epic_server() -> MockServer {
    let server = MockServer::start().await;
    let uri = server.uri();
    for (rt, id) in [
        ("Patient", "p1"),
        ("Observation", "o1"),
        ("Condition", "c1"),
        ("DocumentReference", "d1"),
    ] {
        Mock::given(method("POST"))
            .and(path(format!("/{rt}")))
            .respond_with(epic_created(rt, id))
            .mount(&server)
            .await;
    }
    // What Epic cannot do must never be asked.
    for rt in ["Encounter", "MedicationRequest", "Claim"] {
        Mock::given(method("POST"))
            .and(path(format!("/{rt}")))
            .respond_with(ResponseTemplate::new(403))
            .expect(0)
            .mount(&server)
            .await;
    }
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(403))
        .expect(0)
        .mount(&server)
        .await;
    let encounter = json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
        "subject": {"reference": "Patient/p1"}});
    Mock::given(method("GET"))
        .and(path("/Encounter"))
        .and(query_param("patient", "Patient/p1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(bundle(std::slice::from_ref(&encounter), None)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Encounter/e1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(encounter))
        .mount(&server)
        .await;
    // The read-back's Observation search: a first page whose session expires once.
    Mock::given(method("GET"))
        .and(path("/Observation"))
        .and(query_param("sessionID", "s1"))
        .respond_with(epic_error("expired", "4113"))
        .expect(1)
        .mount(&server)
        .await;
    let next = format!("{uri}/Observation?patient=Patient%2Fp1&sessionID=s1");
    Mock::given(method("GET"))
        .and(path("/Observation"))
        .and(query_param("_count", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&[], Some(next))))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Observation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&[], None)))
        .with_priority(10)
        .mount(&server)
        .await;
    for rt in ["Patient", "Condition", "DocumentReference"] {
        Mock::given(method("GET"))
            .and(path(format!("/{rt}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&[], None)))
            .mount(&server)
            .await;
    }
    server
}

fn client(
    base: &str,
    prefer: Option<String>,
) -> (Client, tokio::sync::mpsc::Receiver<fhirsurge::fhir::Note>) {
    let settings = Settings {
        base: url::Url::parse(base).unwrap(),
        timeout: Duration::from_secs(5),
        retry: Retry::default(),
        harness_prefix: "urn:fhirsurge:".into(),
        prefer,
        ledger: None,
        auth: Default::default(),
        tls: Default::default(),
    };
    let (recorder, rx) = Recorder::new(Instant::now(), 1 << 12);
    (Client::new(settings, recorder).unwrap(), rx)
}

/// Runs encounter 0 with every step against `base` in the profile's dialect.
async fn one_encounter(base: &str, profile: Profile) -> Mapping {
    let (c, _rx) = client(base, profile.write.prefer.clone());
    let population = Population::new(3, "urn:fhirsurge:it", CodeTables::builtin().unwrap());
    let mapper = Arc::new(Mapper::new(profile, None));
    let steps = Step::ALL.iter().map(|s| (*s, 1)).collect();
    let flow = Workflow::new(c, population, steps, Vec::new(), mapper.clone());
    flow.encounter(0, None, None).await;
    mapper.report()
}

fn requests(all: &[Request], verb: &str, p: &str) -> Vec<Request> {
    all.iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == p)
        .cloned()
        .collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn an_epic_shaped_server_is_spoken_to_in_its_dialect() {
    let server = epic_server().await;
    let m = one_encounter(
        &format!("{}/", server.uri()),
        Profile::load("epic").unwrap(),
    )
    .await;
    let lines: Vec<String> = m.decisions.iter().map(|d| d.line()).collect();
    for want in [
        "Encounter create not supported by epic: used an existing encounter (1×)",
        "MedicationRequest create not supported by epic: skipped",
        "Claim create not supported by epic: skipped (1×)",
        "Encounter update the encounter is the EHR's, not the harness's: not closed (1×)",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "{want:?} not in {lines:#?}"
        );
    }
    let quirk = |id: &str| m.quirks_observed.iter().find(|q| q.quirk == id).cloned();
    let relative = quirk("relative_location").unwrap();
    assert!(relative.declared && relative.count > 0, "{relative:?}");
    assert!(quirk("no_etag").unwrap().declared);
    // Epic honours Prefer: an empty 201 despite it is not what the profile declares.
    let empty = quirk("empty_write_body").unwrap();
    assert!(!empty.declared && empty.count > 0, "{empty:?}");
    let expired = quirk("paging_session_expired").unwrap();
    assert_eq!((expired.count, expired.declared), (1, true));

    let all = server.received_requests().await.unwrap();
    let patient = body(&requests(&all, "POST", "/Patient")[0]);
    assert_eq!(patient["identifier"][0]["system"], EPIC_MRN);
    for r in requests(&all, "POST", "/Observation") {
        assert_eq!(body(&r)["encounter"]["reference"], "Encounter/e1");
        assert_eq!(r.headers["prefer"], "return=representation");
    }
    for r in requests(&all, "POST", "/Condition") {
        assert_eq!(
            body(&r)["verificationStatus"]["coding"][0]["code"],
            "provisional"
        );
    }
    let note = body(&requests(&all, "POST", "/DocumentReference")[0]);
    assert_eq!(note["context"]["encounter"][0]["reference"], "Encounter/e1");
    let observation_searches = requests(&all, "GET", "/Observation");
    assert!(
        observation_searches.len() >= 4,
        "{}",
        observation_searches.len()
    );
    for r in &observation_searches {
        let q = r.url.query().unwrap_or("");
        assert!(
            q.contains("sessionID=") || q.contains("category=") || q.contains("code="),
            "{q}"
        );
    }
    // The lookup used the Epic MRN system.
    let lookup = &requests(&all, "GET", "/Patient")[0];
    assert!(
        lookup.url.query().unwrap().contains("1.2.840.114350"),
        "{}",
        lookup.url
    );
    server.verify().await;
}

#[tokio::test]
async fn without_an_existing_encounter_epic_writes_that_need_one_are_skipped_and_named() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/Patient"))
        .respond_with(epic_created("Patient", "p1"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Condition"))
        .respond_with(epic_created("Condition", "c1"))
        .mount(&server)
        .await;
    for rt in ["Observation", "DocumentReference"] {
        Mock::given(method("POST"))
            .and(path(format!("/{rt}")))
            .respond_with(ResponseTemplate::new(400))
            .expect(0)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(&[], None)))
        .mount(&server)
        .await;
    let m = one_encounter(
        &format!("{}/", server.uri()),
        Profile::load("epic").unwrap(),
    )
    .await;
    let skipped = |rt: &str| {
        m.decisions.iter().any(|d| {
            d.resource_type == rt && d.action == Action::Skipped && d.interaction == "create"
        })
    };
    assert!(
        skipped("Encounter") && skipped("Observation") && skipped("DocumentReference"),
        "{:#?}",
        m.decisions
    );
    let all = server.received_requests().await.unwrap();
    let condition = body(&requests(&all, "POST", "/Condition")[0]);
    assert!(condition.get("encounter").is_none(), "{condition}");
    assert!(
        m.adjustments
            .iter()
            .any(|a| a.change.starts_with("encounter: not sent"))
    );
    server.verify().await;
}

#[test]
fn every_declared_transformation_reaches_the_checker() {
    for name in profile::shipped() {
        let p = Profile::load(name).unwrap();
        let expected = p.expected_changes();
        for (rt, rules) in &p.resources {
            let w = &rules.write;
            let paths = w
                .drops
                .iter()
                .map(|d| &d.path)
                .chain(w.rewrites.iter().map(|r| &r.path))
                .chain(w.truncations.iter().map(|t| &t.path))
                .chain(w.remaps.iter().map(|r| &r.path));
            for path in paths {
                let names = expected
                    .get(rt)
                    .unwrap_or_else(|| panic!("{name}: {rt} missing"));
                assert!(
                    names.iter().any(|n| n == path.top_level()),
                    "{name}: {rt}.{path} does not reach the checker ({names:?})"
                );
            }
        }
    }
    let epic = Profile::load("epic").unwrap().expected_changes();
    assert_eq!(
        epic["AllergyIntolerance"],
        ["category", "code", "recordedDate"]
    );
    assert_eq!(epic["Condition"], ["note"]);
}

/// A short run against the built-in mock, which emulates the run's profile.
fn scenario(profile: &str, overlay: Option<&std::path::Path>) -> fhirsurge::scenario::Scenario {
    let mut s = super::run::scenario("");
    s.profile = profile.to_owned();
    s.profile_overlay = overlay.map(|p| p.to_owned());
    s.load = fhirsurge::scenario::Load::Closed {
        users: std::num::NonZeroUsize::new(2).unwrap(),
        duration: Duration::from_secs(1),
        plan: None,
    };
    s
}

/// `fhirsurge check HISTORY`'s exit code.
async fn recheck_cli(history: &std::path::Path) -> Option<i32> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("check")
        .arg(history)
        .output()
        .await
        .unwrap()
        .status
        .code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_profile_runs_against_its_emulating_mock_with_no_findings() {
    for name in profile::shipped() {
        let outcome = super::run::run(&scenario(name, None)).await;
        let r = &outcome.report;
        // Declared quirks are not findings; what the EHR refuses (its rate limits, the
        // interactions it lacks) ends `fail`, never `info`, against a healthy mock.
        assert!(r.findings.is_empty(), "{name}: {:#?}", r.findings);
        assert_eq!(r.summary.info, 0, "{name}: {:?}", r.summary);
        if *name == "us-core" {
            assert_eq!(r.summary.fail, 0, "{name}: {:?}", r.summary);
        }
        assert!(r.summary.interactions > 0, "{name}");
        super::run::assert_valid_report(&outcome.dir.join("report.json"));
        let m = &r.mapping;
        match *name {
            "us-core" => assert!(m.is_empty(), "{name}: {m:#?}"),
            "epic" => assert!(
                m.decisions
                    .iter()
                    .any(|d| d.resource_type == "Encounter" && d.interaction == "create")
            ),
            _ => assert!(!m.is_empty(), "{name}"),
        }
        let evidence = &r
            .scorecard
            .iter()
            .find(|q| q.id == "ehr_mapping")
            .unwrap()
            .evidence;
        for d in &m.decisions {
            assert!(
                evidence.contains(&d.line()),
                "{name}: {} not in {evidence:#?}",
                d.line()
            );
        }
        assert!(r.table().contains("EHR mapping") || m.is_empty(), "{name}");
        // Judged again offline, the history gives what the run gave: the run left its
        // judgement (the profile's declared transformations) beside the history.
        let history = outcome.dir.join(fhirsurge::history::FILE);
        let (options, source) = recheck::options_for(&history, None).unwrap();
        assert_eq!(
            source,
            Source::File(outcome.dir.join(recheck::OPTIONS_FILE))
        );
        assert_eq!(
            options.options.expected_changes,
            Profile::load(name).unwrap().expected_changes()
        );
        let again = recheck::recheck(&history, &options.options).unwrap();
        assert!(again.findings.is_empty(), "{name}: {:#?}", again.findings);
        let blind = check::Options {
            harness_system_prefix: fhirsurge::HARNESS_PREFIX.to_owned(),
            ..check::Options::default()
        };
        let blind = recheck::recheck(&history, &blind).unwrap();
        if *name == "oracle-health" {
            // Its emulation rewrites what it declares: judged blind, those are findings.
            assert!(!blind.findings.is_empty(), "{name}");
            assert_eq!(recheck_cli(&history).await, Some(0), "{name}");
            std::fs::remove_file(outcome.dir.join(recheck::OPTIONS_FILE)).unwrap();
            assert_eq!(recheck_cli(&history).await, Some(1), "{name}");
        }
        std::fs::remove_dir_all(&outcome.dir).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_overlay_reaches_the_run() {
    let overlay =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/overlays/acme-epic.toml");
    let site = Profile::load_with_overlay("epic", Some(&overlay)).unwrap();
    let mrn = site.identifiers.mrn_system.clone().unwrap();
    assert_ne!(mrn, EPIC_MRN, "the overlay sets its own MRN system");
    let outcome = super::run::run(&scenario("epic", Some(&overlay))).await;
    let r = &outcome.report;
    assert_eq!(r.run.profile, site.name);
    assert!(
        r.mapping
            .adjustments
            .iter()
            .any(|a| a.change.contains(&mrn)),
        "{:#?}",
        r.mapping.adjustments
    );
    std::fs::remove_dir_all(&outcome.dir).unwrap();
}
