//! `fhirsurge compare BASELINE CURRENT [--max-regression …]` through the real binary:
//! exit 0 within the margins, 1 on a regression beyond them, 2 on bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use fhirsurge::report::{Margins, Report, compare};

use super::fhirsurge;
use super::sample::sample;

/// Writes `r` as `name/report.json` under `dir`.
fn save(dir: &Path, name: &str, r: &Report) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    r.write(&d).unwrap();
    d.join("report.json")
}

fn run(baseline: &Path, current: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = fhirsurge()
        .arg("compare")
        .arg(baseline)
        .arg(current)
        .args(extra)
        .output()
        .unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn slower(op: &str, factor: f64) -> Report {
    let mut r = sample();
    for o in r
        .operations
        .iter_mut()
        .chain(std::iter::once(&mut r.summary.all))
    {
        if o.op == op || op == "*" {
            o.latency_ms.p99 *= factor;
        }
    }
    r
}

fn fewer(factor: f64) -> Report {
    let mut r = sample();
    r.summary.throughput *= factor;
    r
}

#[test]
fn identical_reports_pass() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", &sample());
    let (code, out, err) = run(&base, &base, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("verdict: no regression"), "{out}");
    assert!(
        out.contains("create Observation") && out.contains("throughput"),
        "{out}"
    );
}

#[test]
fn a_twenty_percent_p99_regression_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", &sample());
    let cur = save(dir.path(), "cur", &slower("create Observation", 1.2));
    let (code, out, _) = run(&base, &cur, &[]);
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("create Observation") && l.contains("p99"))
        .unwrap();
    assert!(
        line.contains("REGRESSED") && line.contains("+20.0 %") && line.contains("+10 %"),
        "{line}"
    );
    assert!(out.contains("REGRESSED: 1 figure"), "{out}");
    let (code, out, _) = run(&base, &cur, &["--max-regression", "p99=25%"]);
    assert_eq!(code, Some(0), "a custom margin allows it:\n{out}");
}

#[test]
fn a_twenty_percent_throughput_drop_fails() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", &sample());
    let cur = save(dir.path(), "cur", &fewer(0.8));
    let (code, out, _) = run(&base, &cur, &[]);
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("all") && l.contains("throughput"))
        .unwrap();
    assert!(
        line.contains("REGRESSED") && line.contains("-20.0 %"),
        "{line}"
    );
    let (code, out, _) = run(&base, &cur, &["--max-regression", "throughput=25%,p99=10%"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn changes_within_the_margins_pass_and_improvements_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", &sample());
    let mut within = slower("*", 1.09);
    within.summary.throughput *= 0.96;
    let cur = save(dir.path(), "cur", &within);
    let (code, out, _) = run(&base, &cur, &[]);
    assert_eq!(code, Some(0), "{out}");
    let faster = save(dir.path(), "fast", &slower("*", 0.5));
    assert_eq!(run(&base, &faster, &[]).0, Some(0));
    assert_eq!(
        run(&faster, &base, &[]).0,
        Some(1),
        "the reverse is a regression"
    );
}

#[test]
fn operations_on_one_side_only_are_listed_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", &sample());
    let mut r = sample();
    r.operations.retain(|o| o.op != "create Claim");
    let mut extra = r.operations[0].clone();
    extra.op = "search Encounter".into();
    r.operations.push(extra);
    let cur = save(dir.path(), "cur", &r);
    let (code, out, _) = run(&base, &cur, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("only in the baseline report (not compared): create Claim"),
        "{out}"
    );
    assert!(
        out.contains("only in the current report (not compared): search Encounter"),
        "{out}"
    );
}

#[test]
fn bad_input_exits_2_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", &sample());
    for (margins, says) in [
        ("p99=ten%", "p99=ten%"),
        ("p95=10%", "unknown metric `p95`"),
        ("p99", "expected METRIC=PERCENT"),
    ] {
        let (code, _, err) = run(&base, &base, &["--max-regression", margins]);
        assert_eq!(code, Some(2), "{margins}: {err}");
        assert!(
            err.contains(says) && err.contains("--max-regression"),
            "{err}"
        );
    }
    let absent = dir.path().join("absent.json");
    let (code, _, err) = run(&base, &absent, &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("absent.json: cannot read"), "{err}");
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"schema": "k6.summary/1"}"#).unwrap();
    let (code, _, err) = run(&other, &base, &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("other.json: not a fhirsurge.report/1 report"),
        "{err}"
    );
}

#[test]
fn the_library_comparison_is_data() {
    let c = compare(&sample(), &slower("all", 1.5), &Margins::default());
    assert!(c.regressed());
    let regressed: Vec<_> = c
        .regressions()
        .map(|r| (r.subject.as_str(), r.metric.as_str()))
        .collect();
    assert_eq!(regressed, [("all", "p99")]);
    assert!(c.table().contains("REGRESSED"));
}
