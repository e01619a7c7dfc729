//! The runner's own cost per request, next to a bare goose transaction doing the same
//! request: goose virtual users read one Patient from the built-in mock EHR over
//! loopback, (a) with `GooseUser::get` (goose's own request path and metrics, the body
//! received and dropped), (a') the same parsing the resource as JSON, and (b)
//! through fhirsurge's `fhir::Client` (three-valued history streamed to disk with content
//! digests, HdrHistogram per operation, the collector task). The CPU of the client side
//! is read per thread from procfs (the mock runs in its own runtime, on threads named
//! apart), so the figures hold on a busy machine.
//!
//! Reproduce: `cargo bench --bench runner_overhead`
//! Knobs: `FHIRSURGE_BENCH_SECS` (per mode and round, default 8), `FHIRSURGE_BENCH_USERS`
//! (default 8), `FHIRSURGE_BENCH_ROUNDS` (default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fhirsurge::fhir::{Client, Ctx, Recorder, Settings};
use fhirsurge::mock::{self, Config, Ehr};
use fhirsurge::run::collector::{self, Live, Sinks};
use goose::config::GooseConfiguration;
use goose::prelude::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The allocator the `fhirsurge` binary runs with, for both modes alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// User + system CPU seconds of this process's threads whose name starts with `prefix`.
fn cpu_seconds(prefix: &str) -> f64 {
    let mut ticks = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head
            .split_once('(')
            .is_some_and(|(_, name)| name.starts_with(prefix))
        {
            continue;
        }
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        ticks += field(11) + field(12);
    }
    ticks / 100.0 // USER_HZ
}

/// One measured mode: requests made and client CPU seconds.
struct Measured {
    requests: u64,
    cpu: f64,
    wall: f64,
}

fn attack(
    transaction: TransactionFunction,
    base: &str,
    users: usize,
    secs: u64,
) -> Box<GooseAttack> {
    let scenario = goose::prelude::Scenario::new("bench")
        .register_transaction(Transaction::new(transaction).set_name("read"));
    GooseAttack::initialize_with_config(GooseConfiguration::default())
        .unwrap()
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, base)
        .unwrap()
        .set_default(GooseDefault::Users, users)
        .unwrap()
        .set_default(GooseDefault::IncreaseRate, users.to_string().as_str())
        .unwrap()
        .set_default(GooseDefault::RunTime, secs as usize)
        .unwrap()
        .set_default(GooseDefault::NoPrintMetrics, true)
        .unwrap()
        .set_default(GooseDefault::NoTelnet, true)
        .unwrap()
        .set_default(GooseDefault::NoErrorSummary, true)
        .unwrap()
        .set_default(GooseDefault::Quiet, 1)
        .unwrap()
}

/// What the bare goose transaction does with the answer.
#[derive(Clone, Copy)]
enum Body {
    /// Receives the bytes and drops them.
    Bytes,
    /// Parses the resource, as an integration that uses what it read must.
    Json,
}

fn bare_goose(base: &str, path: &str, users: usize, secs: u64, body: Body) -> Measured {
    let thread = match body {
        Body::Bytes => "bench-gbytes",
        Body::Json => "bench-gjson",
    };
    let rt = runtime(thread);
    let count = Arc::new(AtomicU64::new(0));
    let (c, path) = (count.clone(), path.to_owned());
    let transaction: TransactionFunction = Arc::new(move |user| {
        let (c, path) = (c.clone(), path.clone());
        Box::pin(async move {
            // Receive the answer, as any integration must (and as fhirsurge does).
            let goose = user.get(&path).await?;
            if let Ok(response) = goose.response {
                match body {
                    Body::Bytes => {
                        let _ = response.bytes().await;
                    }
                    Body::Json => {
                        let resource: serde_json::Value = response.json().await.unwrap_or_default();
                        assert_eq!(resource["resourceType"], "Patient");
                    }
                }
            }
            c.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    });
    let before = cpu_seconds(thread);
    let started = Instant::now();
    rt.block_on(attack(transaction, base, users, secs).execute())
        .unwrap();
    let m = Measured {
        requests: count.load(Ordering::Relaxed),
        cpu: cpu_seconds(thread) - before,
        wall: started.elapsed().as_secs_f64(),
    };
    drop(rt);
    m
}

fn fhirsurge_client(base: &str, id: &str, users: usize, secs: u64) -> Measured {
    let rt = runtime("bench-fhirsurge");
    let dir = tempfile::tempdir().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let before = cpu_seconds("bench-fhirsurge");
    let started = Instant::now();
    rt.block_on(async {
        let start = Instant::now();
        let (recorder, rx) = Recorder::new(start, 1 << 16);
        let sinks = Sinks {
            dir: dir.path().to_owned(),
            start,
            wall_start: std::time::SystemTime::now(),
            growth_window: Duration::from_secs(1),
            stop: fhirsurge::run::Interrupt::new(),
            bodies: false,
            filter: fhirsurge::run::keep::Filter::new(Default::default(), 0),
            judge: None,
        };
        let collector = tokio::spawn(collector::collect(rx, sinks, Live::default()));
        let settings = Settings {
            base: url::Url::parse(base).unwrap(),
            timeout: Duration::from_secs(10),
            retry: Default::default(),
            harness_prefix: "urn:fhirsurge:".into(),
            prefer: None,
            ledger: None,
            auth: Default::default(),
            tls: Default::default(),
        };
        let client = Client::new(settings, recorder.clone()).unwrap();
        let (c, id) = (count.clone(), id.to_owned());
        let transaction: TransactionFunction = Arc::new(move |_user| {
            let (c, id, client) = (c.clone(), id.clone(), client.clone());
            Box::pin(async move {
                let reply = client.read(Ctx::default(), "Patient", &id).await;
                assert!(reply.is_ok());
                c.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
        });
        attack(transaction, base, users, secs)
            .execute()
            .await
            .unwrap();
        recorder.finish().await;
        collector.await.unwrap().unwrap();
    });
    let m = Measured {
        requests: count.load(Ordering::Relaxed),
        cpu: cpu_seconds("bench-fhirsurge") - before,
        wall: started.elapsed().as_secs_f64(),
    };
    drop(rt);
    m
}

fn main() {
    let secs = env("FHIRSURGE_BENCH_SECS", 8);
    let users = env("FHIRSURGE_BENCH_USERS", 8) as usize;
    let rounds = env("FHIRSURGE_BENCH_ROUNDS", 3).max(1);
    let server = runtime("mock-server");
    let shutdown = CancellationToken::new();
    let (base, id) = server.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let ehr = Ehr::new(Config::default()).unwrap();
        tokio::spawn(mock::serve(listener, ehr, shutdown.clone()));
        let patient = json!({"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-01",
            "name": [{"family": "Bench", "given": ["Ada"]}],
            "identifier": [{"system": "urn:fhirsurge:bench", "value": "p1"}]});
        let created = reqwest::Client::new()
            .post(format!("{base}Patient"))
            .header("content-type", "application/fhir+json")
            .json(&patient)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = created.json().await.unwrap();
        (base, body["id"].as_str().unwrap().to_owned())
    });
    let path = format!("Patient/{id}");
    // Alternate the modes, so a neighbour's load on a shared machine falls on all.
    let (mut a, mut j, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(bare_goose(&base, &path, users, secs, Body::Bytes));
        j.push(bare_goose(&base, &path, users, secs, Body::Json));
        b.push(fhirsurge_client(&base, &id, users, secs));
    }
    shutdown.cancel();
    let per = |m: &Measured| m.cpu * 1e6 / m.requests.max(1) as f64;
    let rounds_line = |ms: &[Measured]| {
        ms.iter()
            .map(|m| format!("{:.1}", per(m)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "rounds, client CPU µs/req: goose + bytes {}; goose + JSON {}; fhirsurge {}",
        rounds_line(&a),
        rounds_line(&j),
        rounds_line(&b)
    );
    let median = |ms: &mut Vec<Measured>| {
        ms.sort_by(|x, y| per(x).total_cmp(&per(y)));
        ms.swap_remove(ms.len() / 2)
    };
    let (a, j, b) = (median(&mut a), median(&mut j), median(&mut b));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "runner_overhead: {users} goose users, {rounds} alternating rounds of {secs} s per mode (median round shown), read Patient from the built-in mock over loopback; load average {}",
        load.split_whitespace().next().unwrap_or("?")
    );
    println!(
        "{:<40} {:>10} {:>10} {:>16}",
        "mode", "requests", "req/s", "client CPU µs/req"
    );
    for (name, m) in [
        ("bare goose (GooseUser::get + body bytes)", &a),
        ("bare goose (GooseUser::get + JSON parse)", &j),
        ("fhirsurge fhir::Client + history", &b),
    ] {
        println!(
            "{name:<40} {:>10} {:>10.0} {:>16.1}",
            m.requests,
            m.requests as f64 / m.wall,
            per(m)
        );
    }
    for (name, base) in [("body bytes", &a), ("JSON parse", &j)] {
        let ratio = per(&b) / per(base);
        println!(
            "fhirsurge / bare goose ({name}): {ratio:.2}× ({:+.0} %, {:+.1} µs); goal ≤ 1.25×: {}",
            (ratio - 1.0) * 100.0,
            per(&b) - per(base),
            if ratio <= 1.25 { "met" } else { "NOT met" }
        );
    }
}
