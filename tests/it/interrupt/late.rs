//! A stop that comes after the load phase, while the run waits for late notifications
//! (the alerts scenario with a 120 s notification timeout): the wait is cut, and the run
//! exits within its grace period plus its read-back budget plus 2 s, not 120 s later.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::scenarios::{BUDGET_S, GRACE_S, wait_bounded, wait_for_history};
use crate::run::assert_valid_report;

/// alerts.toml with a 2 s load and a 120 s notification timeout.
fn late_alerts(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/alerts.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    let (load, wait) = (r#"duration = "6s""#, r#"timeout = "5s""#);
    assert!(
        text.contains(load) && text.contains(wait),
        "alerts.toml changed"
    );
    let text =
        text.replacen(load, r#"duration = "2s""#, 1)
            .replacen(wait, r#"timeout = "120s""#, 1);
    let path = dir.join("alerts-late.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn ctrl_c_during_the_late_notification_wait_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("run")
        .arg(late_alerts(dir.path()))
        .arg("--out")
        .arg(&out)
        .args(["--grace", &format!("{GRACE_S}s")])
        .args(["--readback-budget", &format!("{BUDGET_S}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run_dir = wait_for_history(&mut child, &out).expect("the run started");
    // The load takes 2 s (plus its grace); the report below confirms the signal came
    // after it.
    std::thread::sleep(Duration::from_secs(6));
    let sent = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(60)).expect("exited");
    let took = sent.elapsed().as_secs_f64();
    println!("alerts, SIGINT in the notification wait -> exit {took:.2} s");
    assert!(took <= (GRACE_S + BUDGET_S + 2) as f64, "{took:.2} s");
    assert_eq!(status.code(), Some(1));
    let path = run_dir.join("report.json");
    assert_valid_report(&path);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(r["partial"], true);
    let (at, load) = (
        r["stop"]["at_s"].as_f64().unwrap(),
        r["summary"]["load_s"].as_f64().unwrap(),
    );
    assert!(
        at > load,
        "the signal came after the load phase: at {at} s, load {load} s"
    );
}
