//! fhirsurge against a FHIR server nobody on this project wrote: Medplum's FHIR router
//! over its in-memory repository (tests/fhir-server, from npm). A clean run finds
//! nothing; behind the fault proxy with connection resets, every finding is explained by
//! a reset the proxy injected, and nothing acknowledged is lost.
//!
//! Needs node and tests/fhir-server/node_modules, so these tests are ignored (with that
//! reason) under a plain `cargo test`; `.ci/run` installs them and runs them with
//! `--ignored`. Run without them, they fail saying what is missing — never a silent pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fhirsurge::history::{Event, Reader};
use fhirsurge::run::{self, Options};
use fhirsurge::scenario::Scenario;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Bound on the server's start-up (it loads the FHIR R4 definitions first).
const STARTUP: Duration = Duration::from_secs(90);

/// A running server; killed when dropped.
struct Server {
    base: String,
    _child: Child,
}

fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fhir-server")
}

/// Why the server cannot run here, if it cannot.
fn missing() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    if !server_dir()
        .join("node_modules/@medplum/fhir-router")
        .is_dir()
    {
        return Some(
            "tests/fhir-server/node_modules is missing (npm ci --prefix tests/fhir-server)".into(),
        );
    }
    None
}

/// Starts the server on a free loopback port; fails saying what is missing if it cannot.
async fn start() -> Option<Server> {
    if let Some(why) = missing() {
        panic!("the third-party FHIR server cannot run: {why}");
    }
    let mut child = Command::new("node")
        .arg(server_dir().join("server.mjs"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(STARTUP, lines.next_line())
        .await
        .expect("the server printed its listening line in time")
        .expect("stdout readable")
        .expect("the server did not exit before listening");
    let base = line
        .strip_prefix("listening ")
        .expect("a `listening URL` line")
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    Some(Server {
        base,
        _child: child,
    })
}

fn scenario(target: &str, extra: &str) -> Scenario {
    let text = format!(
        r#"
name = "real-server"
seed = 5
max_encounters = 40
[target]
url = "{target}"
timeout = "10s"
[load]
model = "closed"
users = 2
duration = "4s"
[readback]
settle = "200ms"
concurrency = 4
[slo]
error_rate = 1.0
{extra}
"#
    );
    Scenario::from_str(&text, Path::new("real-server.toml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm ci --prefix tests/fhir-server; run: cargo test --test it -- --ignored real_server"]
async fn a_clean_run_against_medplum_finds_nothing_and_every_write_lands() {
    let Some(server) = start().await else { return };
    let out = tempfile::tempdir().unwrap();
    let outcome = run::execute(
        &scenario(&server.base, ""),
        &Options::new(out.path().to_owned()),
    )
    .await
    .unwrap();
    let r = &outcome.report;
    assert!(r.summary.encounters > 0, "{:?}", r.summary);
    assert_eq!(
        r.summary.fail + r.summary.info,
        0,
        "every interaction ok: {:#?}",
        r.operations
    );
    assert!(r.faults.injected.is_empty());
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let checked = &r.checked;
    assert!(
        checked.identifiers_verified > 0 && checked.identifiers_unverified == 0,
        "{checked:?}"
    );
    for op in [
        "create Patient",
        "update Encounter",
        "search Observation",
        "create Claim",
    ] {
        assert!(
            r.operations.iter().any(|o| o.op == op && o.ok > 0),
            "no ok `{op}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm ci --prefix tests/fhir-server; run: cargo test --test it -- --ignored real_server"]
async fn behind_the_fault_proxy_resets_are_explained_and_nothing_is_lost() {
    let Some(server) = start().await else { return };
    let faults = r#"
[retry]
policy = "idempotent-only"
max_attempts = 3
backoff = "20ms"
[[faults]]
kind = "reset_after"
probability = 0.05
[[faults]]
kind = "reset_before"
probability = 0.05
[slo.findings]
committed_despite_error = 100000
"#;
    let out = tempfile::tempdir().unwrap();
    let outcome = run::execute(
        &scenario(&server.base, faults),
        &Options::new(out.path().to_owned()),
    )
    .await
    .unwrap();
    let r = &outcome.report;
    let injected: u64 = r.faults.injected.values().sum();
    assert!(injected > 0, "the proxy injected nothing: {:?}", r.faults);
    assert!(
        r.summary.info + r.summary.fail > 0,
        "resets show as outcomes"
    );
    for kind in [
        "lost_write",
        "corrupted_write",
        "duplicate_write",
        "stale_read",
        "lost_update",
    ] {
        assert!(
            !r.findings
                .iter()
                .any(|f| fhirsurge::report::kind_name(f.kind) == kind),
            "{kind}: {:#?}",
            r.findings
        );
    }
    // Every write committed despite an error was answered by a reset after the server
    // applied it: map the proxy's ledger (history index of the request it touched) to the
    // identifiers those requests wrote.
    let written = identifiers_by_request(&outcome.dir.join(fhirsurge::history::FILE));
    let ledger: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(outcome.dir.join("ledger.json")).unwrap()).unwrap();
    let reset_after: BTreeSet<&str> = ledger
        .iter()
        .filter(|e| e["kind"] == "reset_after")
        .filter_map(|e| e["request"].as_str()?.parse::<u64>().ok())
        .filter_map(|i| written.get(&i).map(String::as_str))
        .collect();
    for f in &r.findings {
        let identifier = f.identifier.as_deref().unwrap_or_default();
        assert!(
            reset_after.contains(identifier),
            "unexplained finding: {f:#?}"
        );
    }
}

/// History index of every write invocation → the identifier it wrote.
fn identifiers_by_request(path: &Path) -> BTreeMap<u64, String> {
    Reader::open(path)
        .unwrap()
        .map(Result::unwrap)
        .filter_map(|r| match r.event {
            Event::Invoke(op) if op.f.is_write() => op.identifier.map(|i| (r.index, i)),
            _ => None,
        })
        .collect()
}
