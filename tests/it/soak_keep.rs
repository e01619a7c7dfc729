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

use crate::run::{assert_valid_report, run};
use crate::support::Ran;

/// The scenario, `{keep}` standing for the keep mode.
const SCENARIO: &str = r#"
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
"#;

fn scenario(keep: &str) -> Scenario {
    let text = SCENARIO.replace("{keep}", keep);
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
    // The command says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .arg("check")
        .arg(&ran.dir)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["keep"], "writes");
    let why = json["not_measured"]["stale_read"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("writes only"), "{json}");
    assert!(json["finding_counts"].get("stale_read").is_none(), "{json}");
    assert!(json["visibility_lag"]["not_measured"].is_string(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_keep_a_merge_of_writes_kept_shards_says_not_measured() {
    use fhirsurge::run::shard::{Part, Shard, Sharded};
    use fhirsurge::run::{self, Control, Options};
    let text = SCENARIO
        .replace("{keep}", "writes")
        .replace("users = 1", "users = 2")
        .replace("duration = \"12s\"", "duration = \"3s\"");
    let out = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for i in 0..2 {
        let shard = Shard::new(&i.to_string(), 2).unwrap();
        let mut s = Scenario::from_str(&text, Path::new("keep.toml")).unwrap();
        shard.apply(&mut s).unwrap();
        let part = Part {
            shard: Some(Sharded {
                shard,
                run_id: "keep-merge".into(),
                run_seed: 23,
                scenario_text: text.clone(),
            }),
            start_at: None,
        };
        let options = Options::new(out.path().to_owned());
        let ran = run::execute_with(&s, &options, &Control::default(), &part)
            .await
            .unwrap();
        dirs.push(ran.dir);
    }
    let merged = run::merge::merge(&dirs, &out.path().join("merged")).unwrap();
    let r = &merged.report;
    let slo = |name: &str| r.slo.iter().find(|s| s.name.starts_with(name)).unwrap();
    for kind in ["stale_read", "invisible_write", "duplicate_write"] {
        let why = slo(kind).not_measured.clone().unwrap_or_default();
        assert!(why.contains("writes only"), "{kind}: {:?}", slo(kind));
        assert!(!r.finding_counts.contains_key(&Kind::named(kind).unwrap()));
    }
    assert!(
        slo("lost_write").not_measured.is_none(),
        "{:?}",
        slo("lost_write")
    );
    let h = r.history.clone().unwrap();
    assert_eq!(h.keep, Keep::Writes);
    assert!(h.dropped > 0 && h.kept + h.dropped == h.records, "{h:?}");
    assert_valid_report(&merged.dir.join("report.json"));
}
