//! A disk that fills while the run writes (`ulimit -f`: writes past the limit fail with
//! `EFBIG`; the binary catches SIGXFSZ so it is not killed): the run stops at once, as on
//! a second Ctrl-C, and writes a partial report saying where the history ends (exit 1);
//! when even the report cannot be written, stderr says where the history ends (exit 3).
//! Either way `fhirsurge check` reads the history up to the line named.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run::assert_valid_report;

/// Runs the smoke scenario for up to 30 s with files limited to `blocks` (of the shell's
/// `ulimit -f` unit; no `trap` — the binary itself must survive SIGXFSZ), bounded by
/// `timeout`: (exit code, stderr).
fn limited_run(blocks: u32, out: &Path, extra: &str) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_fhirsurge");
    let script = format!(
        "ulimit -f {blocks}; exec timeout -s KILL 120 {bin} run scenarios/smoke.toml --duration 30s --users 4 --out {} {extra}",
        out.display()
    );
    let done = Command::new("sh").args(["-c", &script]).output().unwrap();
    (
        done.status.code(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    )
}

fn run_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap()
}

/// `after line N (byte M)` in `text`.
fn position(text: &str) -> (u64, u64) {
    let at = text
        .find("after line ")
        .unwrap_or_else(|| panic!("no position: {text}"));
    let rest = &text[at + "after line ".len()..];
    let (line, rest) = rest.split_once(" (byte ").unwrap();
    let byte = rest.split(')').next().unwrap();
    (line.parse().unwrap(), byte.parse().unwrap())
}

/// `fhirsurge check` on the run folder: the complete lines it read.
fn checked_lines(run_dir: &Path) -> u64 {
    let check = Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("check")
        .arg(run_dir)
        .output()
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&check.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&check.stderr)));
    out["history_end"]["lines"].as_u64().unwrap()
}

#[test]
fn a_disk_that_fills_during_the_load_gives_a_partial_report_saying_where_the_history_ends() {
    let dir = tempfile::tempdir().unwrap();
    // A plain interrupt exit is for signals: a full disk still exits 1.
    let (code, stderr) = limited_run(400, dir.path(), "--interrupt-exit");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    let run_dir = run_dir(dir.path());
    assert_valid_report(&run_dir.join("report.json"));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["partial"], true);
    assert_eq!(r["stop"]["signal"], "disk full", "{r:#}");
    assert_eq!(r["stop"]["readback"], "skipped", "{r:#}");
    let reason = r["partial_reason"].as_str().unwrap();
    assert!(reason.starts_with("stopped by disk full: "), "{reason}");
    assert!(reason.contains("history ends after line"), "{reason}");
    let (line, byte) = position(reason);
    println!("disk full (ulimit -f 400): history ends after line {line} (byte {byte})");
    let history = run_dir.join(fhirsurge::history::FILE);
    assert_eq!(std::fs::metadata(&history).unwrap().len(), byte);
    assert!(line > 0);
    assert_eq!(checked_lines(&run_dir), line);
    // Stopped at once: far short of the 30 s asked for.
    assert!(r["summary"]["load_s"].as_f64().unwrap() < 30.0, "{r:#}");
}

#[test]
fn when_not_even_the_report_fits_stderr_says_where_the_history_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = limited_run(8, dir.path(), "");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(3), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(error.contains("could not be written"), "{error}");
    assert!(error.contains("the history ends after line"), "{error}");
    let (line, byte) = position(error);
    println!("disk full (ulimit -f 8): history ends after line {line} (byte {byte})");
    let run_dir = run_dir(dir.path());
    assert!(!run_dir.join("report.json").exists(), "no truncated report");
    assert_eq!(checked_lines(&run_dir), line);
}
