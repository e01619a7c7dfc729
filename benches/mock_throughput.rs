//! Throughput of the built-in mock EHR over loopback, client and server in one process
//! on the same cores: a create/read/search mix (40 % create Observation, 40 % read by id,
//! 20 % search by identifier) from concurrent reqwest tasks for a bounded time.
//!
//! Reproduce: `cargo bench --bench mock_throughput`
//! Knobs: `FHIRSURGE_BENCH_SECS` (default 10), `FHIRSURGE_BENCH_TASKS` (default 32),
//! `FHIRSURGE_BENCH_WORKERS` (worker threads of each of the two runtimes, server and
//! client, default: the number of cores). Both share the machine's cores; the CPU time of
//! each side is read from procfs, so figures from a busy machine can still be compared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fhirsurge::mock::{self, Config, Ehr};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SYSTEM: &str = "urn:fhirsurge:bench";
const PRELOAD: usize = 2_000;

/// The allocator the `fhirsurge` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn observation(n: u64) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "identifier": [{"system": SYSTEM, "value": format!("o{n}")}],
           "subject": {"reference": format!("Patient/p{}", n % 500)},
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
           "effectiveDateTime": "2025-01-01T10:00:00Z",
           "valueQuantity": {"value": 60 + n % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

#[derive(Default)]
struct Tally {
    latency: Option<Histogram<u64>>,
    ops: [u64; 3],
    errors: u64,
}

fn main() {
    let secs = env("FHIRSURGE_BENCH_SECS", 10);
    let tasks = env("FHIRSURGE_BENCH_TASKS", 32);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let workers = env("FHIRSURGE_BENCH_WORKERS", cores);
    // Two runtimes on the same cores, so that the CPU of each side can be told apart.
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers as usize)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    };
    let server_rt = runtime("mock-server");
    let client_rt = runtime("bench-client");
    let ehr = Ehr::new(Config::default()).unwrap();
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = server_rt.spawn(mock::serve(listener, ehr, shutdown.clone()));
    client_rt.block_on(run(base, Duration::from_secs(secs), tasks, workers));
    shutdown.cancel();
    server_rt.block_on(server).unwrap().unwrap();
}

async fn run(base: String, length: Duration, tasks: u64, workers: u64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(tasks as usize * 2)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ids = Arc::new(preload(&http, &base).await);
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let cpu_start = (cpu_seconds("mock-server"), cpu_seconds(""));
    let handles: Vec<_> = (0..tasks)
        .map(|t| tokio::spawn(worker(http.clone(), base.clone(), ids.clone(), t, deadline)))
        .collect();
    let mut all = Tally {
        latency: Some(Histogram::new(3).unwrap()),
        ..Tally::default()
    };
    for h in handles {
        let t = h.await.unwrap();
        all.latency
            .as_mut()
            .unwrap()
            .add(t.latency.unwrap())
            .unwrap();
        for i in 0..3 {
            all.ops[i] += t.ops[i];
        }
        all.errors += t.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (
        cpu_seconds("mock-server")
            .zip(cpu_start.0)
            .map(|(end, start)| end - start),
        cpu_seconds("")
            .zip(cpu_start.1)
            .map(|(end, start)| end - start),
    );
    report(&all, elapsed, cpu, tasks, workers);
}

/// Creates the resources reads and searches look up.
async fn preload(http: &reqwest::Client, base: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(PRELOAD);
    for n in 0..PRELOAD as u64 {
        let r = http
            .post(format!("{base}Observation"))
            .json(&observation(n))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        ids.push(location.rsplit('/').nth(2).unwrap().to_owned());
    }
    ids
}

async fn worker(
    http: reqwest::Client,
    base: String,
    ids: Arc<Vec<String>>,
    task: u64,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally {
        latency: Some(Histogram::new(3).unwrap()),
        ..Tally::default()
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (task + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut n = 1_000_000 * (task + 1);
    while Instant::now() < deadline {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let pick = (rng % ids.len() as u64) as usize;
        let (op, request) = match rng % 10 {
            0..=3 => {
                n += 1;
                (
                    0,
                    http.post(format!("{base}Observation"))
                        .json(&observation(n)),
                )
            }
            4..=7 => (1, http.get(format!("{base}Observation/{}", ids[pick]))),
            _ => (
                2,
                http.get(format!("{base}Observation?identifier={SYSTEM}%7Co{pick}")),
            ),
        };
        let start = Instant::now();
        let ok = match request
            .header("accept", "application/fhir+json")
            .send()
            .await
        {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        let us = start.elapsed().as_micros() as u64;
        tally.latency.as_mut().unwrap().record(us.max(1)).unwrap();
        tally.ops[op] += 1;
        tally.errors += u64::from(!ok);
    }
    tally
}

/// User + system CPU seconds of this process's threads whose name starts with `prefix`
/// (all threads for ""), from procfs; `None` where there is none.
fn cpu_seconds(prefix: &str) -> Option<f64> {
    let mut ticks = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
        let (head, tail) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1;
        if !name.starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = tail.split_whitespace().collect();
        ticks += fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    }
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn report(all: &Tally, elapsed: f64, cpu: (Option<f64>, Option<f64>), tasks: u64, workers: u64) {
    let h = all.latency.as_ref().unwrap();
    let total: u64 = all.ops.iter().sum();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    println!(
        "mock_throughput: {tasks} client tasks, {workers}+{workers} worker threads (server+client) on shared cores, {elapsed:.1} s, load average {load}"
    );
    println!("  interactions/s  {:.0}", total as f64 / elapsed);
    println!(
        "  interactions    {total} (create {}, read {}, search {}), errors {}",
        all.ops[0], all.ops[1], all.ops[2], all.errors
    );
    println!(
        "  latency         p50 {} µs, p99 {} µs, max {} µs",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let (Some(server), Some(all_threads)) = cpu {
        let per = |s: f64| s * 1e6 / total as f64;
        println!(
            "  cpu per interaction  server {:.1} µs, client {:.1} µs, total {:.1} µs (user+sys)",
            per(server),
            per(all_threads - server),
            per(all_threads)
        );
        println!(
            "  => on {cores} otherwise idle cores: ≈ {:.0} interactions/s with this client; the server alone ≈ {:.0}/s",
            cores as f64 * 1e6 / per(all_threads),
            cores as f64 * 1e6 / per(server)
        );
    }
    println!(
        "  reproduce       cargo bench --bench mock_throughput  (FHIRSURGE_BENCH_SECS, FHIRSURGE_BENCH_TASKS, FHIRSURGE_BENCH_WORKERS)"
    );
}
