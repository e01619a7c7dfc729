//! Ctrl-C and SIGTERM through the real binary: a run stopped mid-load writes a partial
//! report (valid against the schema, marked `partial` with the reason) within its grace
//! period plus its read-back budget, its history stays checkable, and nothing unread is
//! called lost. A second Ctrl-C skips the read-back. After `kill -9` the history still
//! checks, up to its last complete line, and the check says what was cut.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run::assert_valid_report;

mod late;
mod scenarios;

const GRACE_S: u64 = 2;
const BUDGET_S: u64 = 10;

/// The smoke scenario for 30 s, with every request delayed so encounters are in flight
/// when the signal comes.
fn scenario(dir: &Path) -> PathBuf {
    let path = dir.join("slow.toml");
    std::fs::write(
        &path,
        r#"name = "slow"
seed = 7
[target]
url = "mock"
timeout = "10s"
[load]
model = "closed"
users = 4
duration = "30s"
[readback]
settle = "100ms"
[[faults]]
kind = "latency"
latency = "1500ms"
[slo]
error_rate = 1.0
"#,
    )
    .unwrap();
    path
}

/// Starts a run under `dir/out`; returns the child and the run folder once its history
/// exists (the load phase is about to begin).
fn start(dir: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let out = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("run")
        .arg(scenario(dir))
        .arg("--out")
        .arg(&out)
        .args(["--grace", &format!("{GRACE_S}s")])
        .args(["--readback-budget", &format!("{BUDGET_S}s")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let run_dir = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path());
        if let Some(run_dir) = run_dir.filter(|d| d.join("history.jsonl.zst").exists()) {
            // Into the load phase: encounters are in flight (each request takes 1.5 s).
            std::thread::sleep(Duration::from_millis(2500));
            return (child, run_dir);
        }
        if Instant::now() > until || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the run did not start: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the exit within the grace period plus the read-back budget plus 2 s (a
/// bounded wait: a hang fails the test instead of stalling it). Returns the exit code and
/// stderr.
fn exits(mut child: Child) -> (Option<i32>, String) {
    let until = Instant::now() + Duration::from_secs(GRACE_S + BUDGET_S + 2);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running {} s after the signal: {}",
                GRACE_S + BUDGET_S + 2,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The report is valid and partial; the history re-checks offline with no lost write.
fn partial_report(run_dir: &Path, signal: &str) -> serde_json::Value {
    let path = run_dir.join("report.json");
    assert_valid_report(&path);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(r["partial"], true, "{r:#}");
    assert_eq!(r["passed"], false);
    assert_eq!(r["run"]["interrupted"], true);
    assert_eq!(r["stop"]["signal"], signal);
    let reason = r["partial_reason"].as_str().unwrap();
    assert!(reason.contains(signal), "{reason}");
    assert!(r["summary"]["encounters"].as_u64().unwrap() > 0);
    assert!(r["finding_counts"].get("lost_write").is_none(), "{r:#}");
    let check = Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("check")
        .arg(run_dir.join("history.jsonl.zst"))
        .output()
        .unwrap();
    let rechecked: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(rechecked["checked"]["records"].as_u64().unwrap() > 0);
    assert!(rechecked["finding_counts"].get("lost_write").is_none());
    r
}

#[test]
fn ctrl_c_mid_run_writes_a_partial_report_within_grace_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (child, run_dir) = start(dir.path(), &[]);
    signal(&child, "INT");
    let (code, stderr) = exits(child);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("partial report"), "{stderr}");
    let r = partial_report(&run_dir, "SIGINT");
    assert_eq!(r["stop"]["readback"], "complete", "{r:#}");
    // Stopped at once: far fewer encounters than 30 s would have run.
    assert!(r["summary"]["load_s"].as_f64().unwrap() < 25.0, "{r:#}");
}

#[test]
fn sigterm_writes_a_partial_report_and_exits_143_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (child, run_dir) = start(dir.path(), &["--interrupt-exit"]);
    signal(&child, "TERM");
    let (code, stderr) = exits(child);
    assert_eq!(code, Some(143), "{stderr}");
    partial_report(&run_dir, "SIGTERM");
}

#[test]
fn a_second_ctrl_c_skips_the_read_back_and_keeps_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (child, run_dir) = start(dir.path(), &["--interrupt-exit"]);
    signal(&child, "INT");
    // Requests in flight take 1.5 s each: the second signal comes while the load phase
    // winds down, before the read-back.
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "INT");
    let (code, stderr) = exits(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("skipping the read-back"), "{stderr}");
    let r = partial_report(&run_dir, "SIGINT");
    assert_eq!(r["stop"]["readback"], "skipped", "{r:#}");
    assert_eq!(r["summary"]["readback"]["count"], 0, "{r:#}");
    assert!(
        r["checked"]["identifiers_unverified"].as_u64().unwrap() > 0,
        "what was not read back is unchecked: {r:#}"
    );
}

#[test]
fn after_kill_9_the_history_checks_up_to_its_last_complete_line_and_says_what_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, run_dir) = start(dir.path(), &[]);
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    assert!(!run_dir.join("report.json").exists());
    let check = Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("check")
        .arg(&run_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stderr}");
    let out: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let lines = out["history_end"]["lines"].as_u64().unwrap();
    assert!(lines > 0, "{out:#}");
    assert_eq!(out["checked"]["records"].as_u64(), Some(lines));
    // Killed mid-block: the unfinished end is named, with the line it follows.
    let cut = out["history_end"]["cut"].as_str().unwrap();
    assert!(cut.contains(&format!("after line {lines}")), "{cut}");
    assert!(
        stderr.contains(&format!("ends at line {lines}")),
        "{stderr}"
    );
    // Nothing was read back: writes are unverified, never lost.
    assert!(out["finding_counts"].get("lost_write").is_none());
}
