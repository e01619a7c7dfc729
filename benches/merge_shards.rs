//! Merging a sharded run: `FHIRSURGE_BENCH_SHARDS` shards of one run (default 8) run one
//! after another as `fhirsurge run --shard I/N` processes against one separate
//! `serve-mock`, each for `FHIRSURGE_BENCH_SECS` (default 10) at
//! `FHIRSURGE_BENCH_RATE` encounters/s for the whole run (default 320; each shard runs its 1/N), then
//! `fhirsurge merge` combines them. Printed: the interactions merged, the merge's wall
//! time and its peak resident memory (`VmHWM` of the merge process, sampled until it
//! exits), and the merged history's size.
//!
//! Reproduce: `cargo bench --bench merge_shards`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "procs/mod.rs"]
mod procs;

use procs::{BIN, env, start_mock, status_mib};

fn scenario(dir: &Path, port: u16, secs: u64, rate: u64) -> PathBuf {
    let text = format!(
        r#"
name = "merge-bench"
seed = 9
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
"#
    );
    let path = dir.join("merge-bench.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn main() {
    let shards = env("FHIRSURGE_BENCH_SHARDS", 8);
    let secs = env("FHIRSURGE_BENCH_SECS", 10);
    let rate = env("FHIRSURGE_BENCH_RATE", 320);
    let dir = tempfile::tempdir().unwrap();
    let mock = start_mock();
    let port = mock.port;
    let path = scenario(dir.path(), port, secs, rate);
    let out = dir.path().join("shards");
    for i in 0..shards {
        let status = Command::new(BIN)
            .arg("run")
            .arg(&path)
            .args([
                "--shard",
                &format!("{i}/{shards}"),
                "--run-id",
                "merge-bench",
            ])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.code().is_some_and(|c| c <= 1), "shard {i}: {status}");
    }
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let merged = dir.path().join("merged");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(&merged)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0.0f64;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(status_mib(child.id(), "VmHWM:").unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("report.json")).unwrap()).unwrap();
    let interactions = report["summary"]["interactions"].as_u64().unwrap_or(0);
    let history = std::fs::metadata(merged.join("history.jsonl.zst"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "merge_shards: {shards} shards x {secs} s at {rate} encounters/s: {interactions} load interactions merged in {took:.2} s, merge peak RSS {peak:.1} MiB (sampled every 20 ms), merged history {:.2} MiB",
        history as f64 / 1048576.0
    );
}
