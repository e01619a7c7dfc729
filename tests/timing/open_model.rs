//! The open model against a server that stalls every answer for 2 s in the middle of the
//! run (the fault proxy's `stall` in front of the mock, on loopback): encounters keep
//! starting on schedule, the first request of each is timed from its intended start, the
//! next from its own send; the closed model against the same server hides the stall.

use std::path::Path;

use fhirsurge::history::{self, Event, Interaction, Record};
use fhirsurge::metrics::OpSummary;
use fhirsurge::report::Report;
use fhirsurge::scenario::Scenario;

use crate::run::{assert_valid_report, run};

/// A stall of every answer from 1 s to 2 s into the run, holding each for 2 s.
const STALL: &str = r#"
[[faults]]
kind = "stall"
latency = "2s"
from = "1s"
for = "1s"
"#;

fn scenario(load: &str) -> Scenario {
    let text = format!(
        r#"
name = "stall"
seed = 3
workflow = [{{ step = "admit" }}]
[target]
url = "mock"
timeout = "10s"
[load]
{load}
[readback]
settle = "50ms"
concurrency = 64
{STALL}
"#
    );
    Scenario::from_str(&text, Path::new("stall.toml")).unwrap()
}

fn op<'a>(r: &'a Report, name: &str) -> &'a OpSummary {
    r.operations
        .iter()
        .find(|o| o.op == name)
        .unwrap_or_else(|| panic!("no `{name}` in the report"))
}

/// Load-phase completions of `f` `resource_type` slower than `ms`, and all of them.
fn slow(dir: &Path, f: Interaction, resource_type: &str, ms: u64) -> (usize, usize) {
    let records: Vec<Record> = history::Reader::open(&dir.join(history::FILE))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let wanted: std::collections::HashSet<u64> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Invoke(op)
                if op.f == f
                    && op.resource_type == resource_type
                    && op.phase == history::Phase::Load =>
            {
                Some(r.index)
            }
            _ => None,
        })
        .collect();
    let latencies: Vec<u64> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Ok(c) | Event::Fail(c) | Event::Info(c) if wanted.contains(&c.invoke) => {
                Some(c.latency_us)
            }
            _ => None,
        })
        .collect();
    let slow = latencies.iter().filter(|&&us| us >= ms * 1000).count();
    (slow, latencies.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_shows_a_stall_where_it_happened_and_the_closed_model_hides_it() {
    let _alone = crate::support::alone().await;
    let open = run(&scenario(
        "model = \"open\"\nrate = 40.0\nusers = 10\nmax_users = 200\nduration = \"3s\"",
    ))
    .await;
    let r = &open.report;
    assert_valid_report(&open.dir.join("report.json"));
    let patient = op(r, "create Patient");
    let encounter = op(r, "create Encounter");
    // Encounters due during the stall waited for it: the first request shows it.
    assert!(patient.latency_ms.p99 >= 1500.0, "{patient:?}");
    // The call sent after the stall is timed from its own send: normal latency.
    assert!(encounter.latency_ms.p95 < 1000.0, "{encounter:?}");
    let whole = r.workload.encounter.as_ref().expect("an encounter row");
    assert!(whole.latency_ms.p99 >= 1500.0, "{whole:?}");
    let o = r.workload.open.as_ref().expect("the open model's schedule");
    assert_eq!(o.dropped_starts, 0, "200 users are enough: {o:?}");
    assert!((100..=125).contains(&o.offered), "3 s at 40/s: {o:?}");
    assert_eq!(o.started, o.offered, "{o:?}");
    assert!(
        o.users_reached > 10,
        "the pool grew through the stall: {o:?}"
    );
    let (open_slow, open_all) = slow(&open.dir, Interaction::Create, "Patient", 1500);
    // A second's worth of starts (40) was due during the stall.
    assert!(open_slow >= 25, "{open_slow} of {open_all}");

    let closed = run(&scenario(
        "model = \"closed\"\nusers = 4\nduration = \"3s\"",
    ))
    .await;
    let (closed_slow, closed_all) = slow(&closed.dir, Interaction::Create, "Patient", 1500);
    // Each of the 4 closed users is caught by the stall at most once: the users wait
    // instead of sending, so the stall hides in a handful of samples.
    assert!(closed_slow <= 4, "{closed_slow} of {closed_all}");
    assert!(
        closed_all > closed_slow,
        "the closed users ran: {closed_all}"
    );
    let share = |slow: usize, all: usize| slow as f64 / all.max(1) as f64;
    assert!(
        share(closed_slow, closed_all) < share(open_slow, open_all) / 2.0,
        "closed {closed_slow}/{closed_all} vs open {open_slow}/{open_all}"
    );
    assert!(closed.report.workload.open.is_none());
    assert!(closed.report.workload.encounter.is_some());
}

/// The shipped hospital day, shortened to 4 s (the rate plan keeps its shape): every
/// group runs its own workflow and the report shows each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hospital_day_runs_shortened_and_reports_each_group() {
    let _alone = crate::support::alone().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/hospital-day.toml");
    let mut s = Scenario::load(&path).unwrap();
    assert_eq!(s.load.duration(), std::time::Duration::from_secs(26));
    s.apply(&fhirsurge::scenario::Overrides {
        duration: Some(std::time::Duration::from_secs(4)),
        ..Default::default()
    })
    .unwrap();
    let ran = run(&s).await;
    let r = &ran.report;
    assert_valid_report(&ran.dir.join("report.json"));
    let names: Vec<&str> = r.workload.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["clinicians", "ai-agent", "billing"]);
    for g in &r.workload.groups {
        assert!(g.encounter.count > 0 && g.all.count > 0, "{g:?}");
    }
    let ops = |name: &str| -> Vec<&str> {
        let g = r.workload.groups.iter().find(|g| g.name == name).unwrap();
        g.operations.iter().map(|o| o.op.as_str()).collect()
    };
    // Each group ran its own workflow, and only it.
    let claim = "conditional_create Claim";
    assert!(ops("billing").contains(&claim), "{:?}", ops("billing"));
    assert!(!ops("clinicians").contains(&claim));
    assert!(!ops("ai-agent").contains(&claim));
    assert!(ops("ai-agent").contains(&"update Encounter"));
    assert!(!ops("clinicians").contains(&"update Encounter"));
    let total: u64 = r.workload.groups.iter().map(|g| g.encounter.count).sum();
    assert_eq!(
        total, r.summary.encounters,
        "every encounter belongs to a group"
    );
    let races = r
        .workload
        .races
        .as_ref()
        .expect("the agent races the nurse");
    assert!(races.run > 0, "{races:?}");
    let open = r.workload.open.as_ref().unwrap();
    assert_eq!(open.dropped_starts, 0, "{open:?}");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}
