//! Ctrl-C in the middle of every shipped scenario (`scenarios/*.toml`, enumerated, not
//! listed): each run, 30 s long, gets SIGINT a few seconds into its load and must exit 1
//! within its grace period plus its read-back budget plus 2 s with a partial report
//! valid against the schema. A hang fails the test (the wait is bounded) instead of
//! stalling it. Runs go a few at a time; each prints how long it took to exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::assert_valid_report;

pub(super) const GRACE_S: u64 = 2;
pub(super) const BUDGET_S: u64 = 10;
/// Runs at once: the machine has two cores, shared.
const BATCH: usize = 2;
/// How long a run may take to reach its load phase (its history file).
const START_S: u64 = 90;

/// The shipped scenarios, sorted.
fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    all.sort();
    all
}

/// What one interrupted run did.
struct Stopped {
    name: String,
    /// From SIGINT to exit.
    exit_s: f64,
    code: Option<i32>,
    stderr: String,
    run_dir: PathBuf,
}

/// Starts the scenario for 30 s under `out`.
fn spawn(scenario: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(["--duration", "30s"])
        .args(["--grace", &format!("{GRACE_S}s")])
        .args(["--readback-budget", &format!("{BUDGET_S}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The run folder once its history exists; `None` if the run ended or never got there.
pub(super) fn wait_for_history(child: &mut Child, out: &Path) -> Option<PathBuf> {
    let until = Instant::now() + Duration::from_secs(START_S);
    while Instant::now() < until && child.try_wait().unwrap().is_none() {
        let found = std::fs::read_dir(out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path())
            .filter(|d| d.join("history.jsonl.zst").exists());
        if found.is_some() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits at most `bound` for the exit; kills a run still going then.
pub(super) fn wait_bounded(child: &mut Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one scenario, interrupts it ~2 s into its load, times its exit.
fn interrupt(scenario: &Path, out: &Path) -> Stopped {
    let name = scenario.file_stem().unwrap().to_string_lossy().into_owned();
    let mut child = spawn(scenario, out);
    let Some(run_dir) = wait_for_history(&mut child, out) else {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "{name}: no history within {START_S} s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "{name}: kill -INT");
    // Twice the bound: a run slower than the bound is measured, a hang is cut.
    let bound = Duration::from_secs(2 * (GRACE_S + BUDGET_S + 2));
    let exited = wait_bounded(&mut child, bound);
    let exit_s = sent.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    Stopped {
        name,
        exit_s: if exited.is_some() {
            exit_s
        } else {
            f64::INFINITY
        },
        code: exited.and_then(|s| s.code()),
        stderr,
        run_dir,
    }
}

/// Every shipped scenario, a batch at a time.
fn interrupt_all(root: &Path) -> Vec<Stopped> {
    let all = shipped();
    assert!(all.len() >= 10, "{} shipped scenarios: {all:?}", all.len());
    let mut stopped = Vec::new();
    for batch in all.chunks(BATCH) {
        let handles: Vec<_> = batch
            .iter()
            .map(|s| {
                let (s, out) = (s.clone(), root.join(s.file_stem().unwrap()));
                std::thread::spawn(move || interrupt(&s, &out))
            })
            .collect();
        for h in handles {
            let s = h.join().unwrap();
            println!(
                "{:<22} SIGINT -> exit {:>6.2} s, code {:?}",
                s.name, s.exit_s, s.code
            );
            stopped.push(s);
        }
    }
    stopped
}

#[test]
fn ctrl_c_in_every_shipped_scenario_gives_a_partial_report_within_bounds() {
    let root = tempfile::tempdir().unwrap();
    let stopped = interrupt_all(root.path());
    let bound = (GRACE_S + BUDGET_S + 2) as f64;
    let mut late = Vec::new();
    for s in &stopped {
        if s.exit_s > bound {
            late.push(format!("{}: {:.2} s\n{}", s.name, s.exit_s, s.stderr));
            continue;
        }
        assert_eq!(s.code, Some(1), "{}: {}", s.name, s.stderr);
        let path = s.run_dir.join("report.json");
        assert_valid_report(&path);
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(r["partial"], true, "{}", s.name);
        assert_eq!(r["stop"]["signal"], "SIGINT", "{}", s.name);
        let reason = r["partial_reason"].as_str().unwrap();
        assert!(reason.contains("SIGINT"), "{}: {reason}", s.name);
    }
    assert!(
        late.is_empty(),
        "not stopped within {bound} s of SIGINT:\n{}",
        late.join("\n")
    );
}
