//! What the fault proxy costs when no fault acts: N concurrent reqwest tasks (keep-alive)
//! against a minimal hyper server answering a small FHIR JSON, first direct, then through
//! the proxy with no fault, then through the proxy with an HTTP fault configured that never
//! fires (responses framed, as in a run outside its fault windows). Prints req/s, p50, p99
//! and the deltas against direct.
//!
//! `cargo bench --bench proxy_overhead`; `PROXY_BENCH_SECS` (default 5) sets each phase's
//! length, `PROXY_BENCH_CONCURRENCY` (default 8) the number of tasks.
#![allow(clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fhirsurge::fault::proxy::{self, Config, Proxy};
use fhirsurge::fault::{Ledger, Spec};
use hdrhistogram::Histogram;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const PATIENT: &str = r#"{"resourceType":"Patient","id":"1"}"#;

/// The allocator the `fhirsurge` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A hyper HTTP/1.1 server that answers every request with a small Patient.
async fn upstream(shutdown: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let mut res = hyper::Response::new(axum::body::Body::from(PATIENT));
                    res.headers_mut().insert(
                        "content-type",
                        "application/fhir+json".parse().expect("header"),
                    );
                    Ok::<_, Infallible>(res)
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

async fn start_proxy(
    upstream: SocketAddr,
    faults: &[&str],
    shutdown: CancellationToken,
) -> SocketAddr {
    let faults = faults
        .iter()
        .enumerate()
        .map(|(i, f)| (i, Spec::parse_flag(f).expect("fault")))
        .collect();
    let config = Config {
        upstream: url::Url::parse(&format!("http://{upstream}/fhir/")).expect("url"),
        faults,
        seed: 1,
        ledger: Ledger::new(Instant::now()),
        ca_cert: None,
        serve_ledger: false,
        control: Default::default(),
    };
    let p = Proxy::new(config).expect("proxy");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(proxy::serve(listener, p, shutdown));
    addr
}

struct Figures {
    rate: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
    /// CPU of the whole process (client, server and proxy) per request.
    cpu_us: f64,
}

/// User + system CPU time of this process so far (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// `tasks` keep-alive clients hammering `url` for `length`.
async fn drive(url: String, tasks: u64, length: Duration) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(tasks as usize)
        .build()
        .expect("client");
    // Warm up: open the connections.
    for _ in 0..tasks {
        let _ = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status());
    }
    let start = Instant::now();
    let cpu = cpu_time();
    let deadline = start + length;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (client, url) = (client.clone(), url.clone());
        handles.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (h, errors)
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut errors = 0;
    for handle in handles {
        let (h, e) = handle.await.expect("task");
        all.add(h).expect("merge");
        errors += e;
    }
    let cpu_us = (cpu_time() - cpu).as_micros() as f64 / all.len().max(1) as f64;
    Figures {
        cpu_us,
        rate: all.len() as f64 / start.elapsed().as_secs_f64(),
        p50_us: all.value_at_quantile(0.50),
        p99_us: all.value_at_quantile(0.99),
        errors,
    }
}

fn row(name: &str, f: &Figures, direct: &Figures) {
    let throughput = (f.rate / direct.rate - 1.0) * 100.0;
    let p50 = f.p50_us as i64 - direct.p50_us as i64;
    println!(
        "{name:<24} {:>9.0} {:>8} {:>8} {:>6} {:>10.1}   {:>+7.1}% {:>+7} µs {:>+9.1}",
        f.rate,
        f.p50_us,
        f.p99_us,
        f.errors,
        f.cpu_us,
        throughput,
        p50,
        f.cpu_us - direct.cpu_us
    );
}

fn main() {
    let secs = env("PROXY_BENCH_SECS", 5);
    let tasks = env("PROXY_BENCH_CONCURRENCY", 8);
    let length = Duration::from_secs(secs);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let up = upstream(shutdown.clone()).await;
        let plain = start_proxy(up, &[], shutdown.clone()).await;
        let framed = start_proxy(up, &["http_status,status=503,probability=0"], shutdown.clone()).await;
        println!("proxy overhead: {tasks} keep-alive reqwest tasks, {secs} s per phase, GET of a {}-byte Patient", PATIENT.len());
        println!("{:<24} {:>9} {:>8} {:>8} {:>6} {:>10}   {:>8} {:>10} {:>9}",
            "", "req/s", "p50 µs", "p99 µs", "errors", "CPU µs/req", "Δ req/s", "Δ p50", "Δ CPU µs");
        let direct = drive(format!("http://{up}/fhir/Patient/1"), tasks, length).await;
        row("direct", &direct, &direct);
        let through = drive(format!("http://{plain}/fhir/Patient/1"), tasks, length).await;
        row("proxy, no fault", &through, &direct);
        let idle = drive(format!("http://{framed}/fhir/Patient/1"), tasks, length).await;
        row("proxy, idle HTTP fault", &idle, &direct);
        shutdown.cancel();
    });
}
