//! The HTML report in a real headless Chromium (tests/browser/check-report.mjs): every
//! chart rendered with a non-zero size and the page made no network request. Needs node,
//! the script's node_modules and /usr/bin/chromium, so it is ignored (with that reason)
//! under a plain `cargo test`; `.ci/run` installs them and runs it with `--ignored`. Run
//! without them, it fails saying what is missing — it never passes without running.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::sample::sample;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on the whole browser check (launch, load, screenshot).
const TIMEOUT: Duration = Duration::from_secs(120);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What is missing to run the check, if anything.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some(
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)".into(),
        );
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    None
}

/// Runs the script, bounded by [`TIMEOUT`]; returns its exit code and stdout.
fn check(html: &Path, png: &Path) -> (Option<i32>, String, String) {
    let mut child = Command::new("node")
        .arg(browser_dir().join("check-report.mjs"))
        .arg(html)
        .arg(png)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        let _ = tx.send((out, err));
    });
    let Ok((out, err)) = rx.recv_timeout(TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the browser check did not finish within {TIMEOUT:?}");
    };
    (child.wait().unwrap().code(), out, err)
}

#[test]
#[ignore = "needs node, npm ci --prefix tests/browser and chromium; run: cargo test --test it -- --ignored browser"]
fn the_report_renders_in_chromium_without_a_network_request() {
    if let Some(why) = missing() {
        panic!("the browser check cannot run: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let r = sample();
    r.write_all(dir.path()).unwrap();
    let png = dir.path().join("report.png");
    let (code, out, err) = check(&dir.path().join("report.html"), &png);
    let json: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    assert_eq!(code, Some(0), "{json:#}\n{err}");
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(json["requests"].as_array().unwrap().len(), 0, "{json:#}");
    let charts = &json["charts"];
    for (chart, count) in [
        ("throughput", 1),
        ("errors", 1),
        ("distribution", 1),
        ("latency", r.latency_series.len()),
    ] {
        assert_eq!(charts[chart]["count"], count, "{chart}: {json:#}");
        assert!(
            charts[chart]["min_width"].as_f64().unwrap() > 100.0,
            "{chart}: {json:#}"
        );
        assert!(
            charts[chart]["min_height"].as_f64().unwrap() > 50.0,
            "{chart}: {json:#}"
        );
        assert!(
            charts[chart]["min_shapes"].as_f64().unwrap() > 2.0,
            "{chart}: {json:#}"
        );
    }
    let shot = std::fs::read(&png).unwrap();
    assert!(
        shot.starts_with(b"\x89PNG") && shot.len() > 10_000,
        "a real screenshot"
    );
    // FHIRSURGE_KEEP_REPORT=DIR keeps the rendered files and the screenshot to look at.
    if let Ok(keep) = std::env::var("FHIRSURGE_KEEP_REPORT") {
        std::fs::create_dir_all(&keep).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, Path::new(&keep).join(path.file_name().unwrap())).unwrap();
        }
    }
}
