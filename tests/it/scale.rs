//! Running beyond one machine: three shards of one run as separate processes (the
//! binary, the index from `JOB_COMPLETION_INDEX` as a Kubernetes Indexed Job sets it)
//! against one `serve-mock`, then `fhirsurge merge`. The merged totals are the sums, the
//! merged percentiles are those of the union of every shard's samples, and a duplicate
//! planted on the server for one shard's identifier is found after the merge.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fhirsurge::history::{self, Event, Phase};
use fhirsurge::report::Report;
use fhirsurge::synth::{CodeTables, Population};

fn fhirsurge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
}

/// A `serve-mock` process, killed when dropped.
struct Mock {
    child: Child,
    base: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_mock() -> Mock {
    let mut child = fhirsurge()
        .args(["serve-mock", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stderr = child.stderr.take().unwrap();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    let start = line.find("http://").expect(&line);
    let base = line[start..].split_whitespace().next().unwrap().to_owned();
    Mock { child, base }
}

/// Creates a Patient carrying `identifier` (`system|value`) directly on the server.
async fn plant(base: &str, identifier: &str) {
    let (system, value) = identifier.split_once('|').unwrap();
    let body = serde_json::json!({
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        "name": [{"family": "Planted"}],
    });
    let r = reqwest::Client::new()
        .post(format!("{base}Patient"))
        .header("content-type", "application/fhir+json")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
}

const SEED: u64 = 42;

fn shard(i: u32, base: &str, out: &Path, run_id: &str, start_at: &str) -> Child {
    fhirsurge()
        .args([
            "run",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml"),
            "--target",
            base,
            "--duration",
            "2s",
            "--users",
            "3",
            "--seed",
            &SEED.to_string(),
            "--shards",
            "3",
            "--run-id",
            run_id,
            "--start-at",
            start_at,
            "--out",
        ])
        .arg(out)
        .env("JOB_COMPLETION_INDEX", i.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every load-phase completion's latency (µs) in a history.
fn load_latencies(path: &Path) -> Vec<u64> {
    let mut load_invokes = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in history::Reader::open(path).unwrap() {
        let r = r.unwrap();
        match &r.event {
            Event::Invoke(op) if op.phase == Phase::Load => {
                load_invokes.insert(r.index);
            }
            Event::Ok(c) | Event::Fail(c) | Event::Info(c) if load_invokes.contains(&c.invoke) => {
                out.push(c.latency_us)
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shard_processes_merge_into_one_run_with_lossless_percentiles_and_cross_shard_findings()
 {
    let mock = serve_mock();
    let dir = tempfile::tempdir().unwrap();
    let run_id = format!("it-scale-{}", std::process::id());
    let namespace = format!("{}{run_id}", fhirsurge::HARNESS_PREFIX);
    // Shard 1's first patient, as the shard will write it: two copies already on the
    // server, so its read-back finds more than the harness made.
    let tables = CodeTables::builtin().unwrap();
    let planted = Population::new(SEED, &namespace, tables)
        .slice(1, 3)
        .encounter(0)
        .patient
        .identifier;
    plant(&mock.base, &planted).await;
    plant(&mock.base, &planted).await;

    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let children: Vec<Child> = (0..3)
        .map(|i| shard(i, &mock.base, dir.path(), &run_id, &start_at))
        .collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "shard {i}: {stderr}");
        dirs.push(dir.path().join(format!("{run_id}-shard-{i}-of-3")));
    }
    drop(mock);

    let shards: Vec<Report> = dirs
        .iter()
        .map(|d| Report::read(&d.join("report.json")).unwrap())
        .collect();
    let merged_dir = dir.path().join("merged");
    let out = fhirsurge()
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The planted duplicate fails the run's consistency SLO: exit 1, as `run`.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let merged = Report::read(&merged_dir.join("report.json")).unwrap();

    // Totals are the sums.
    let sum = |f: fn(&Report) -> u64| shards.iter().map(f).sum::<u64>();
    assert!(merged.summary.interactions > 0);
    assert_eq!(merged.summary.interactions, sum(|r| r.summary.interactions));
    assert_eq!(merged.summary.ok, sum(|r| r.summary.ok));
    assert_eq!(merged.summary.encounters, sum(|r| r.summary.encounters));
    assert_eq!(merged.checked.records, sum(|r| r.checked.records));
    assert_eq!(merged.run.id, run_id);
    assert_eq!(merged.run.load.users, 3);
    let per_second: u64 = merged.series.iter().map(|s| s.ok + s.fail + s.info).sum();
    assert_eq!(per_second, merged.summary.interactions);

    // Percentiles are those of the union of every shard's samples.
    let mut union = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for d in &dirs {
        for us in load_latencies(&d.join(history::FILE)) {
            union.record(us.clamp(1, 3_600_000_000)).unwrap();
        }
    }
    assert_eq!(union.len(), merged.summary.interactions);
    let all = &merged.summary.all.latency_ms;
    for (q, got) in [
        (0.5, all.p50),
        (0.9, all.p90),
        (0.99, all.p99),
        (1.0, all.max),
    ] {
        let want = union.value_at_quantile(q) as f64 / 1000.0;
        assert!(
            (got - want).abs() <= want * 0.001 + 0.001,
            "p{q}: merged {got} ms, union {want} ms"
        );
    }

    // The duplicate planted for shard 1's identifier is found in the merged history, and
    // its evidence points at records of that identifier there.
    let dup: Vec<_> = merged
        .findings
        .iter()
        .filter(|f| f.kind == fhirsurge::check::Kind::DuplicateWrite)
        .collect();
    assert_eq!(dup.len(), 1, "{:#?}", merged.findings);
    assert_eq!(dup[0].identifier.as_deref(), Some(planted.as_str()));
    let records: HashMap<u64, history::Record> =
        history::Reader::open(&merged_dir.join(history::FILE))
            .unwrap()
            .map(|r| r.unwrap())
            .map(|r| (r.index, r))
            .collect();
    let names_it = dup[0].evidence.iter().any(|i| match &records[i].event {
        Event::Invoke(op) => op.identifier.as_deref() == Some(planted.as_str()),
        _ => false,
    });
    assert!(names_it, "evidence {:?}", dup[0].evidence);
    assert!(!merged.passed);

    // Shards of another run are refused, exit 2.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs[2].join("shard.json")).unwrap()).unwrap();
    record["run_id"] = "another-run".into();
    std::fs::write(other.join("shard.json"), record.to_string()).unwrap();
    std::fs::copy(dirs[2].join("report.json"), other.join("report.json")).unwrap();
    let out = fhirsurge()
        .arg("merge")
        .args([&dirs[0], &other])
        .arg("--out")
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not shards of one run"), "{stderr}");
}

/// The block scalar under `key: |` in a YAML manifest (indented deeper than the key).
fn block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next().expect(key);
    let indent = head.len() - head.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .map(|l| l.get(indent + 2..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_manifests_carry_a_valid_scenario_and_agree_on_the_shard_count() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let config = std::fs::read_to_string(dir.join("configmap.yaml")).unwrap();
    let scenario = block(&config, "scenario.toml");
    let s = fhirsurge::scenario::Scenario::from_str(&scenario, Path::new("scenario.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{scenario}"));
    assert!(
        s.load.peak_users() >= 4,
        "every one of 4 shards needs a user"
    );
    let tmp = tempfile::tempdir().unwrap();
    let overlay = tmp.path().join("profile.toml");
    std::fs::write(&overlay, block(&config, "profile.toml")).unwrap();
    fhirsurge::profile::check_file(&overlay).unwrap();

    let job = std::fs::read_to_string(dir.join("shards-job.yaml")).unwrap();
    let value = |key: &str| {
        job.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .expect(key)
    };
    let n = value("completions:");
    assert_eq!(value("parallelism:"), n);
    assert!(job.contains("completionMode: Indexed"));
    let args: Vec<&str> = job.lines().map(str::trim).collect();
    let at = args.iter().position(|l| *l == "- --shards").unwrap();
    assert_eq!(args[at + 1].trim_start_matches("- ").trim_matches('"'), n);
    let merge = std::fs::read_to_string(dir.join("merge-job.yaml")).unwrap();
    assert!(
        merge.contains(&format!("-shard-*-of-{n}")),
        "merge globs {n} shards"
    );
}
