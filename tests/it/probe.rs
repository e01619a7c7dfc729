//! The capability probe against the built-in mock on loopback: the US Core baseline
//! agrees with it, Epic does not (the mock creates Encounters; it has no SMART
//! configuration); and the real binary's exit codes for `probe` and `profile check`.

use std::time::Duration;

use fhirsurge::cli::exit::{self, Failure};
use fhirsurge::fhir::Tls;
use fhirsurge::probe::{self, Weight};
use fhirsurge::profile::Profile;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves a plain mock EHR on 127.0.0.1:0 until the token is dropped.
async fn mock() -> (url::Url, tokio_util::sync::DropGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ehr = fhirsurge::mock::Ehr::new(fhirsurge::mock::Config::default()).unwrap();
    let token = CancellationToken::new();
    tokio::spawn(fhirsurge::mock::serve(listener, ehr, token.clone()));
    (
        url::Url::parse(&format!("http://{addr}/")).unwrap(),
        token.drop_guard(),
    )
}

/// Serves the mock running `profile` (as `serve-mock --profile` does) on 127.0.0.1:0.
async fn mock_running(profile: &Profile) -> (url::Url, tokio_util::sync::DropGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = fhirsurge::mock::Config {
        profile: Some(std::sync::Arc::new(profile.clone())),
        ..fhirsurge::mock::Config::default()
    };
    let ehr = fhirsurge::mock::Ehr::new(config).unwrap();
    let token = CancellationToken::new();
    tokio::spawn(fhirsurge::mock::serve(listener, ehr, token.clone()));
    (
        url::Url::parse(&format!("http://{addr}/")).unwrap(),
        token.drop_guard(),
    )
}

#[tokio::test]
async fn every_shipped_profile_agrees_with_the_mock_running_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        fhirsurge::profile::shipped().len(),
        "{files:?}"
    );
    for file in files {
        let profile = Profile::load(file.to_str().unwrap()).unwrap();
        let name = profile.name.clone();
        let (base, _stop) = mock_running(&profile).await;
        let f = probe::probe(&base, &profile, &Tls::default(), Duration::from_secs(5))
            .await
            .unwrap();
        let disagreements: Vec<_> = f
            .differences
            .iter()
            .filter(|d| d.weight == Weight::Disagree)
            .collect();
        assert!(disagreements.is_empty(), "{name}:\n{}", f.render());
        assert!(f.agree());
        assert!(
            f.render()
                .contains(&format!("summary: {name} and the server agree"))
        );
    }
}

async fn findings(base: &url::Url, profile: &str) -> probe::Findings {
    let p = Profile::load(profile).unwrap();
    probe::probe(base, &p, &Tls::default(), Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_mock_agrees_with_us_core_and_disagrees_with_epic() {
    let (base, _stop) = mock().await;
    let us = findings(&base, "us-core").await;
    assert!(us.agree(), "{}", us.render());
    assert!(
        us.render()
            .contains("summary: us-core and the server agree")
    );
    assert!(
        us.software
            .as_deref()
            .unwrap()
            .starts_with("fhirsurge mock EHR")
    );

    let epic = findings(&base, "epic").await;
    assert!(!epic.agree());
    let disagrees = |subject: &str, item: &str| {
        epic.differences
            .iter()
            .any(|d| d.weight == Weight::Disagree && d.subject == subject && d.item == item)
    };
    assert!(disagrees("Encounter", "create"), "{}", epic.render());
    assert!(
        disagrees("Encounter", "conditional_create"),
        "{}",
        epic.render()
    );
    assert!(
        !disagrees("Observation", "search `category`"),
        "{}",
        epic.render()
    );
    assert!(disagrees("SMART", "configuration"), "{}", epic.render());
    assert!(disagrees("system", "transaction"), "{}", epic.render());
    assert!(!disagrees("Observation", "search `code`"));
    let text = epic.render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("DISAGREE") && l.contains("Encounter") && l.contains("create")),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("notes") && text.contains("epic and the server disagree"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_fhir_or_not_there_is_an_error() {
    let server = wiremock::MockServer::start().await;
    let base = url::Url::parse(&format!("{}/", server.uri())).unwrap();
    let p = Profile::load("us-core").unwrap();
    let err = probe::probe(&base, &p, &Tls::default(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, probe::Error::NotFhir { .. }), "{err}");
    let message = err.to_string();
    let code = exit::code(&Failure::from(err).into());
    assert_eq!(code, 3, "{message}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let err = probe::probe(&gone, &p, &Tls::default(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, probe::Error::Unreachable { .. }), "{err}");
}

async fn fhirsurge(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_0_when_they_agree_1_when_not_2_on_bad_input_3_when_unreachable() {
    let (base, _stop) = mock().await;
    let url = base.as_str();
    let agree = fhirsurge(&["probe", "--target", url]).await;
    assert_eq!(
        agree.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&agree.stderr)
    );
    let out = fhirsurge(&["probe", "--target", url, "--profile", "epic"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Encounter") && stdout.contains("summary:"),
        "{stdout}"
    );
    let bad = fhirsurge(&["probe", "--target", url, "--profile", "no-such-ehr"]).await;
    assert_eq!(bad.status.code(), Some(2));
    let overlay = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/overlays/acme-epic.toml"
    );
    let wrong_base = fhirsurge(&["probe", "--target", url, "--profile-overlay", overlay]).await;
    assert_eq!(
        wrong_base.status.code(),
        Some(2),
        "the acme overlay applies to epic, not us-core"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let out = fhirsurge(&["probe", "--target", &gone]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&gone));
}

#[tokio::test]
async fn profile_check_says_one_line_or_where_the_mistake_is() {
    let overlay = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/overlays/acme-epic.toml"
    );
    let ok = fhirsurge(&["profile", "check", overlay]).await;
    assert_eq!(ok.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("epic-acme") && stdout.contains("valid"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "base = \"epic\"\n\n[paging]\nstyle = \"sessions\"\n").unwrap();
    let out = fhirsurge(&["profile", "check", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:", bad.display())),
        "{stderr}"
    );
}
