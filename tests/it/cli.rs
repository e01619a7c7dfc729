//! The real binary, the way a user runs it: exit codes and messages for bad input and an
//! unreachable target. (Everything else is tested through the library.)

use std::process::Command;

fn fhirsurge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
}

/// Runs a scenario that must be refused: exit 2, nothing written; returns stderr.
fn refused(path: &std::path::Path, out_dir: &std::path::Path) -> String {
    let out = fhirsurge()
        .arg("run")
        .arg(path)
        .arg("--out")
        .arg(out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!out_dir.exists(), "nothing is written");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_scenario_exits_2_naming_file_line_column_and_key_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "name = \"bad\"\n[target]\nurl = \"mock\"\n[load]\nmodel = \"closed\"\nusers = 2\nduraton = \"1s\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let stderr = refused(&path, &out_dir);
    assert!(
        stderr.contains(&format!("{}:7:1", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("duraton"), "{stderr}");
    assert!(!out_dir.exists(), "nothing is written");
}

#[test]
fn an_unknown_fault_kind_in_a_scenario_exits_2_naming_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-fault.toml");
    let text = "name = \"bad\"\n[target]\nurl = \"mock\"\n[load]\nmodel = \"closed\"\nusers = 2\n\
                duration = \"1s\"\n\n[[faults]]\nprobability = 0.1\nkind = \"jitterbug\"\n";
    std::fs::write(&path, text).unwrap();
    let out_dir = dir.path().join("out");
    let stderr = refused(&path, &out_dir);
    assert!(
        stderr.contains(&format!("{}:11:1", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("`jitterbug`") && stderr.contains("reset_peer"),
        "{stderr}"
    );
    assert!(!out_dir.exists(), "nothing is written");

    // A bad attribute of a known kind: located at that key.
    let text = text.replace(
        "kind = \"jitterbug\"",
        "kind = \"latency\"\nlatency = \"1s\"\nbytes = 3",
    );
    std::fs::write(&path, text).unwrap();
    let stderr = refused(&path, &out_dir);
    assert!(
        stderr.contains(&format!("{}:13:1", path.display())) && stderr.contains("`bytes`"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_target_exits_3_quickly_with_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/fhir/", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let out = fhirsurge()
        .args([
            "run",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml"),
            "--target",
            &url,
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&url), "{stderr}");
}

/// Runs the smoke scenario for a short while under `out`, with extra flags.
fn smoke(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    fhirsurge()
        .args([
            "run",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml"),
            "--duration",
            "2s",
            "--users",
            "2",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn run_with_a_baseline_fails_on_a_regression_and_refuses_a_bad_baseline_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let first = smoke(&dir.path().join("a"), &[]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let run_dir = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("report.json")).unwrap()).unwrap();
    // A baseline ten times faster on every operation: this run must count as a regression.
    for op in report["operations"].as_array_mut().unwrap() {
        let p99 = op["latency_ms"]["p99"].as_f64().unwrap();
        op["latency_ms"]["p99"] = serde_json::json!(p99 / 10.0);
    }
    let p99 = report["summary"]["all"]["latency_ms"]["p99"]
        .as_f64()
        .unwrap();
    report["summary"]["all"]["latency_ms"]["p99"] = serde_json::json!(p99 / 10.0);
    let baseline = dir.path().join("baseline.json");
    std::fs::write(&baseline, serde_json::to_vec(&report).unwrap()).unwrap();
    let second = smoke(
        &dir.path().join("b"),
        &["--baseline", baseline.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("against the baseline"), "{stdout}");

    std::fs::write(&baseline, "{\"schema\": \"something-else\"}").unwrap();
    let bad = smoke(
        &dir.path().join("c"),
        &["--baseline", baseline.to_str().unwrap()],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(!dir.path().join("c").exists(), "nothing ran");
}

#[test]
fn serve_mock_refuses_a_non_loopback_listen_address_without_allow_remote() {
    let out = fhirsurge()
        .args(["serve-mock", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not loopback") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

/// A smoke run reconciles no audit trail and races no updates: its JUnit shows those
/// checks skipped (not measured, with the reason), never passed, in the consistency
/// suite and in any objective the scenario sets for them. (Its patient-scoped searches
/// are checked for leaks, so `scope_leak` is measured.)
#[test]
fn a_smoke_runs_junit_skips_the_audit_and_lost_update_cases() {
    let dir = tempfile::tempdir().unwrap();
    let out = smoke(dir.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let xml = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    for kind in ["audit_gap", "audit_mismatch", "lost_update"] {
        let about: Vec<_> = cases
            .iter()
            .filter(|c| {
                c.attribute("name") == Some(kind)
                    || c.attribute("name")
                        .is_some_and(|n| n.starts_with(&format!("{kind} ")))
            })
            .collect();
        assert!(
            about
                .iter()
                .any(|c| c.attribute("classname") == Some("fhirsurge.consistency")),
            "{kind}: no consistency case in {xml}"
        );
        for c in about {
            let skipped = c
                .children()
                .find(|n| n.has_tag_name("skipped"))
                .unwrap_or_else(|| panic!("{kind}: {c:?} is not skipped in {xml}"));
            let why = skipped.attribute("message").unwrap_or_default();
            assert!(why.starts_with("not measured"), "{kind}: {why}");
            assert!(!c.children().any(|n| n.has_tag_name("failure")), "{kind}");
        }
    }
}
