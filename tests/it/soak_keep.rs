//! Bounded history for soaks (`[history] keep`): the run's findings come from the live
//! judge, which sees every record, so they are the same in every mode; the file is
//! smaller when reads are dropped; and an offline check of a file not kept whole says
//! the read-based kinds are not measured instead of passing them.
//!
//! The runs are made deterministic enough to compare: one user, a fixed number of
//! encounters (done well before the load phase ends), and silent faults that do not
//! depend on timing (a `stale_read` window far longer than the run).

use std::collections::BTreeMap;
use std::path::Path;

use fhirsurge::check::Kind;
use fhirsurge::run::recheck;
use fhirsurge::scenario::{Keep, Scenario};

use crate::run::{Ran, assert_valid_report, run};

fn scenario(keep: &str) -> Scenario {
    let text = format!(
        r#"
name = "keep"
seed = 23
max_encounters = 8
[target]
url = "mock"
timeout = "10s"
[load]
model = "closed"
users = 1
duration = "12s"
[readback]
settle = "50ms"
[history]
keep = "{keep}"
[[faults]]
kind = "ack_and_drop"
probability = 0.15
[[faults]]
kind = "strip"
probability = 0.1
[[faults]]
kind = "stale_read"
probability = 0.5
delay = "10m"
resource_types = ["Encounter"]
"#
    );
    Scenario::from_str(&text, Path::new("keep.toml")).unwrap()
}

/// The findings by kind, once the run is known to have done all its encounters (the
/// load phase idles after them until its end).
fn counts(ran: &Ran) -> BTreeMap<Kind, u64> {
    assert_eq!(
        ran.report.summary.encounters, ENCOUNTERS,
        "every encounter ran"
    );
    ran.report.finding_counts.clone()
}

const ENCOUNTERS: u64 = 8;

fn history_bytes(ran: &Ran) -> u64 {
    std::fs::metadata(ran.dir.join(fhirsurge::history::FILE))
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_keep_findings_are_the_same_in_every_mode_and_the_file_shrinks() {
    let full = run(&scenario("full")).await;
    let full_counts = counts(&full);
    assert!(
        full_counts.get(&Kind::LostWrite).copied().unwrap_or(0) > 0,
        "the silent faults must give findings to compare: {full_counts:?}"
    );
    let kept = full.report.history.clone().unwrap();
    assert_eq!((kept.keep, kept.dropped), (Keep::Full, 0));
    assert_eq!(kept.kept, kept.records);
    for mode in ["writes", "sample:0.2"] {
        let ran = run(&scenario(mode)).await;
        assert_eq!(counts(&ran), full_counts, "keep = {mode}");
        let h = ran.report.history.clone().unwrap();
        assert_eq!(h.keep.to_string(), mode);
        assert!(h.dropped > 0 && h.kept + h.dropped == h.records, "{h:?}");
        assert!(
            history_bytes(&ran) < history_bytes(&full),
            "keep = {mode}: {} bytes, full {}",
            history_bytes(&ran),
            history_bytes(&full)
        );
        assert_valid_report(&ran.dir.join("report.json"));
        let md = std::fs::read_to_string(ran.dir.join("summary.md")).unwrap();
        assert!(md.contains(&format!("keep = \"{mode}\"")), "{md}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_keep_an_offline_check_of_a_writes_history_says_not_measured() {
    let ran = run(&scenario("writes")).await;
    let stale_live = counts(&ran).get(&Kind::StaleRead).copied().unwrap_or(0);
    assert!(
        stale_live > 0,
        "the live judge saw the reads: {:?}",
        counts(&ran)
    );
    let history = ran.dir.join(fhirsurge::history::FILE);
    let (recorded, _) = recheck::options_for(&history, None).unwrap();
    assert_eq!(recorded.keep, Keep::Writes, "check.json records the mode");
    let mut outcome = recheck::recheck(&history, &recorded.options).unwrap();
    let not_measured = recheck::unmeasured(recorded.keep, &mut outcome);
    for kind in [
        Kind::StaleRead,
        Kind::InvisibleWrite,
        Kind::ScopeLeak,
        Kind::AuditGap,
    ] {
        let why = not_measured.get(&kind).unwrap();
        assert!(why.contains("writes only") && why.contains("keep"), "{why}");
        assert!(
            !outcome.counts.contains_key(&kind),
            "{kind:?} never counted"
        );
    }
    assert!(!not_measured.contains_key(&Kind::LostWrite));
    // The write-only kinds stay measured, and find what the run found.
    assert_eq!(
        outcome.counts.get(&Kind::LostWrite),
        ran.report.finding_counts.get(&Kind::LostWrite)
    );
}
