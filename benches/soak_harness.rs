//! The harness over a soak, per history keep mode: the `fhirsurge` binary runs an open
//! model at a steady rate against a separate `fhirsurge serve-mock` process on loopback,
//! and this bench samples the harness process's resident memory (`VmRSS` of
//! `/proc/<pid>/status`) every second. Printed per mode: RSS during the load phase
//! (median and last), the peak over the whole run (`VmHWM`), the time from the end of the
//! load phase to the report (`run.ended_at` − `run.started_at` − `summary.load_s`: the
//! settle time, the read-back and the judging), the history file's size and the disk per
//! million interactions, and what the file kept (`report.json`'s `history`); and the
//! mock's resident memory after the run per write it acknowledged.
//!
//! Reproduce: `cargo bench --bench soak_harness`
//! Knobs: `FHIRSURGE_BENCH_SECS` (load phase per mode, default 20),
//! `FHIRSURGE_BENCH_RATE` (encounters started per second, default 40),
//! `FHIRSURGE_BENCH_MODES` (default `full,writes,sample:0.1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "procs/mod.rs"]
mod procs;

use procs::{BIN, env, start_mock, status_mib};

fn scenario(dir: &Path, port: u16, secs: u64, rate: u64, keep: &str) -> PathBuf {
    let text = format!(
        r#"
name = "soak-bench"
seed = 5
[target]
url = "http://127.0.0.1:{port}/"
timeout = "10s"
[load]
model = "open"
rate = {rate}.0
duration = "{secs}s"
users = 32
max_users = 256
[readback]
settle = "1s"
concurrency = 32
[visibility]
sample = 0.05
[history]
keep = "{keep}"
"#
    );
    let path = dir.join(format!("soak-{}.toml", keep.replace(':', "-")));
    std::fs::write(&path, text).unwrap();
    path
}

/// What one mode's run showed.
struct Measured {
    keep: String,
    load_rss: Vec<f64>,
    peak_mib: f64,
    after_load_s: f64,
    interactions: u64,
    history_bytes: u64,
    kept: (u64, u64),
    /// The mock's resident memory after the run, and the writes it acknowledged.
    mock_mib: f64,
    writes_ok: u64,
}

fn run(dir: &Path, (port, mock): (u16, u32), keep: &str, secs: u64, rate: u64) -> Measured {
    let out = dir.join(format!("out-{}", keep.replace(':', "-")));
    let path = scenario(dir, port, secs, rate, keep);
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut load_rss = Vec::new();
    let mut peak_mib = 0.0f64;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if let Some(rss) = status_mib(pid, "VmRSS:") {
            // Samples within the load phase (after a second of setup).
            let at = started.elapsed().as_secs_f64();
            if at > 1.0 && at < secs as f64 {
                load_rss.push(rss);
            }
        }
        if let Some(hwm) = status_mib(pid, "VmHWM:") {
            peak_mib = peak_mib.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let run_dir = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("report.json").exists())
        .expect("a report");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("report.json")).unwrap()).unwrap();
    let time =
        |k: &str| chrono::DateTime::parse_from_rfc3339(report["run"][k].as_str().unwrap()).unwrap();
    let total_s = (time("ended_at") - time("started_at")).as_seconds_f64();
    let load_s = report["summary"]["load_s"].as_f64().unwrap_or(0.0);
    let history = &report["history"];
    Measured {
        keep: keep.to_owned(),
        load_rss,
        peak_mib,
        after_load_s: total_s - load_s,
        interactions: report["summary"]["interactions"].as_u64().unwrap_or(0)
            + report["summary"]["readback"]["count"].as_u64().unwrap_or(0),
        history_bytes: std::fs::metadata(run_dir.join("history.jsonl.zst"))
            .map(|m| m.len())
            .unwrap_or(0),
        kept: (
            history["kept"].as_u64().unwrap_or(0),
            history["records"].as_u64().unwrap_or(0),
        ),
        mock_mib: status_mib(mock, "VmRSS:").unwrap_or(f64::NAN),
        writes_ok: report["checked"]["writes_ok"].as_u64().unwrap_or(0),
    }
}

fn print(m: &Measured) {
    let mut rss = m.load_rss.clone();
    rss.sort_by(f64::total_cmp);
    let median = rss.get(rss.len() / 2).copied().unwrap_or(f64::NAN);
    let last = m.load_rss.last().copied().unwrap_or(f64::NAN);
    let per_million = m.history_bytes as f64 / m.interactions.max(1) as f64 * 1e6;
    println!(
        "keep={:<11} interactions={:>8}  load RSS median {:>6.1} MiB, last {:>6.1} MiB, min..max {:>6.1}..{:<6.1} | peak {:>6.1} MiB | end of load -> report {:>5.1} s | history {:>7.2} MiB = {:>6.1} MiB per 1M interactions | kept {} of {} records",
        m.keep,
        m.interactions,
        median,
        last,
        rss.first().copied().unwrap_or(f64::NAN),
        rss.last().copied().unwrap_or(f64::NAN),
        m.peak_mib,
        m.after_load_s,
        m.history_bytes as f64 / 1048576.0,
        per_million / 1048576.0,
        m.kept.0,
        m.kept.1,
    );
    println!(
        "               mock RSS after the run {:>6.1} MiB for {} acknowledged writes ({:.2} KiB per stored version, the mock's baseline included)",
        m.mock_mib,
        m.writes_ok,
        m.mock_mib * 1024.0 / m.writes_ok.max(1) as f64,
    );
}

fn main() {
    let secs = env("FHIRSURGE_BENCH_SECS", 20);
    let rate = env("FHIRSURGE_BENCH_RATE", 40);
    let modes = std::env::var("FHIRSURGE_BENCH_MODES")
        .unwrap_or_else(|_| "full,writes,sample:0.1".to_owned());
    let dir = tempfile::tempdir().unwrap();
    println!(
        "soak_harness: {secs} s load per mode at {rate} encounters/s (open model), separate serve-mock, history modes {modes}"
    );
    for keep in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        // A fresh mock per mode: each run starts against an empty server.
        let mock = start_mock();
        let m = run(dir.path(), (mock.port, mock.pid()), keep, secs, rate);
        print(&m);
    }
}
