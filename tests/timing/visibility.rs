//! The visibility prober against the built-in mock EHR hiding every new resource from
//! search for exactly N ms (reads by id work at once): the reported lag is the hidden
//! time, at the probe interval's resolution, and the probes stay out of the workflow's
//! latencies.

use fhirsurge::history::{Event, Phase, Reader};

use crate::run::{run, scenario};

const HIDDEN_MS: f64 = 300.0;
const INTERVAL_MS: f64 = 25.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probed_lag_is_the_hidden_time_at_the_interval_resolution() {
    let _alone = crate::support::alone().await;
    let extra = format!(
        r#"
[visibility]
sample = 1.0
interval = "{INTERVAL_MS}ms"
timeout = "10s"
concurrency = 64
[[faults]]
kind = "delayed_visibility"
probability = 1.0
delay = "{HIDDEN_MS}ms"
"#
    );
    let ran = run(&scenario(&extra)).await;
    let r = &ran.report;
    let v = &r.visibility_lag;
    eprintln!("visibility lag: {v:?}");
    for o in &r.operations {
        eprintln!(
            "{} n={} p50={} p99={}",
            o.op, o.count, o.latency_ms.p50, o.latency_ms.p99
        );
    }
    assert!(v.lag.samples >= 10, "{v:?}");
    assert_eq!(v.lag.never_visible, 0, "{v:?}");
    assert_eq!(v.interval_ms, Some(INTERVAL_MS));
    let p50 = v.lag.p50_ms.unwrap();
    // The resolution is the interval plus one probe's own latency: on an idle machine
    // that is [N, N + interval + 10 ms]; a loaded debug build adds its search latency.
    let upper = HIDDEN_MS + INTERVAL_MS + 10.0 + v.probes.latency_p99_ms;
    assert!(
        (HIDDEN_MS..=upper).contains(&p50),
        "p50 {p50} ms outside [{HIDDEN_MS}, {upper}]"
    );
    assert!(v.probes.requests > v.lag.samples, "{v:?}");
    assert!(
        r.operations.iter().all(|o| !o.op.starts_with("probe ")),
        "probes are kept out of the workflow's operations"
    );
    assert!(
        !r.findings
            .iter()
            .any(|f| f.kind == fhirsurge::check::Kind::InvisibleWrite),
        "{:#?}",
        r.findings
    );
    let probes = Reader::open(&ran.dir.join(fhirsurge::history::FILE))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|rec| matches!(&rec.event, Event::Invoke(op) if op.phase == Phase::Probe))
        .count() as u64;
    assert_eq!(probes, v.probes.requests, "every probe is in the history");
}
