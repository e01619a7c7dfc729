//! The rendered outputs of a report — HTML, JUnit, Markdown — from a fabricated report:
//! charts are real SVG, untrusted text is escaped, nothing is fetched, JUnit parses with
//! the right counts, the summary fits a comment, and `fhirsurge report` re-renders the
//! same bytes.

mod browser;
mod compare;
pub mod sample;

use std::path::Path;
use std::process::Command;

use fhirsurge::report::{Report, html, junit, markdown};
use sample::{MALICIOUS, sample};

fn fhirsurge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
}

/// The `<svg …>…</svg>` elements of a page whose `data-chart` is `chart`.
fn charts<'a>(page: &'a str, chart: &str) -> Vec<&'a str> {
    let open = format!(r#"<svg class="chart" data-chart="{chart}""#);
    page.match_indices(&open)
        .map(|(i, _)| {
            let end = page[i..].find("</svg>").map_or(page.len(), |e| i + e + 6);
            &page[i..end]
        })
        .collect()
}

#[test]
fn the_sample_report_matches_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    sample().write_all(dir.path()).unwrap();
    crate::run::assert_valid_report(&dir.path().join("report.json"));
    for name in fhirsurge::report::RENDERED {
        assert!(
            dir.path().join(name).metadata().unwrap().len() > 0,
            "{name}"
        );
    }
}

#[test]
fn every_chart_is_a_real_svg_plot_with_axes_and_marks() {
    let r = sample();
    let page = html::render(&r);
    let throughput = charts(&page, "throughput");
    assert_eq!(throughput.len(), 1);
    assert!(
        throughput[0].matches("<rect").count() > 60,
        "a bar per second"
    );
    assert_eq!(
        throughput[0].matches("<title>fault ").count(),
        2,
        "both windows shaded"
    );
    let errors = charts(&page, "errors");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains(">io</text>") && errors[0].contains(">timeout</text>"),
        "legend"
    );
    let distribution = charts(&page, "distribution");
    assert_eq!(distribution.len(), 1);
    assert!(distribution[0].contains(">99.9%</text>") && distribution[0].contains(">max</text>"));
    assert_eq!(
        distribution[0].matches(r#"<path class="series""#).count(),
        8,
        "all + 7 slowest"
    );
    let panels = charts(&page, "latency");
    assert_eq!(panels.len(), r.latency_series.len());
    for svg in throughput
        .iter()
        .chain(&errors)
        .chain(&distribution)
        .chain(&panels)
    {
        assert!(
            svg.contains(r#"class="axis""#) && svg.contains(r#"class="axis-title""#),
            "{svg:.200}"
        );
        assert!(svg.contains(r#"<g class="ticks"><text"#), "tick labels");
        assert!(svg.contains(r#"<g class="legend">"#), "legend");
        assert!(svg.contains("<path") || svg.contains("<rect"), "marks");
    }
    assert!(
        panels[0].contains("create DocumentReference"),
        "slowest first"
    );
    assert_eq!(
        panels[0].matches(r#"<path class="series""#).count(),
        2,
        "p50 and p99"
    );
}

#[test]
fn the_page_has_the_sections_a_reader_needs() {
    let r = sample();
    let page = html::render(&r);
    for id in [
        "scorecard",
        "slo",
        "run",
        "charts",
        "operations",
        "faults",
        "findings",
        "lag",
    ] {
        assert!(page.contains(&format!(r#"<section id="{id}">"#)), "{id}");
    }
    let scorecard = page.find(r#"id="scorecard""#).unwrap();
    assert!(
        scorecard < page.find(r#"id="slo""#).unwrap(),
        "the scorecard comes first"
    );
    assert_eq!(page.matches(r#"<li class="q "#).count(), 7);
    assert!(page.contains(">FAILED</span>"));
    assert!(page.contains("p99 of create Observation &lt;= 250 ms"));
    assert!(page.contains("create DocumentReference"));
    assert!(page.contains("reset_peer") && page.contains("end of run"));
    assert!(page.contains("<code>lost_write</code> — 3 findings"));
    assert!(page.contains("870 ms"), "visibility lag p99");
    assert!(!page.contains("Run interrupted"));
    let mut interrupted = r.clone();
    interrupted.run.interrupted = true;
    assert!(html::render(&interrupted).contains("Run interrupted"));
}

#[test]
fn injected_markup_is_shown_as_text_never_run() {
    let page = html::render(&sample());
    assert!(!page.contains(MALICIOUS));
    assert!(page.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;svg onload=alert(1)&gt;"));
    let lower = page.to_lowercase();
    for tag in [
        "<script",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "<link",
        "<svg onload",
    ] {
        assert!(!lower.contains(tag), "{tag}");
    }
}

#[test]
fn the_page_references_nothing_on_the_network() {
    let r = sample();
    let page = html::render(&r);
    let lower = page.to_lowercase();
    for pattern in [
        "src=\"", "src='", "href=", "url(", "@import", "xlink:", "http://",
    ] {
        assert!(!lower.contains(pattern), "{pattern}");
    }
    assert!(lower.contains("content-security-policy") && lower.contains("default-src 'none'"));
    assert_eq!(
        page.matches("https://").count(),
        page.matches(&r.run.target).count(),
        "the only URL is the target's name, as text"
    );
}

#[test]
fn junit_parses_and_counts_every_objective_and_check() {
    let r = sample();
    let xml = junit::render(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["slo", "consistency", "scorecard"]);
    let mut total = 0;
    for s in &suites {
        let cases: Vec<_> = s
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let failures = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .count();
        assert_eq!(s.attribute("tests").unwrap(), cases.len().to_string());
        assert_eq!(s.attribute("failures").unwrap(), failures.to_string());
        assert!(s.attribute("time").is_some());
        total += cases.len();
    }
    assert_eq!(root.attribute("tests").unwrap(), total.to_string());
    let slo_cases = suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(slo_cases, r.slo.len());
    let failed_slos = r
        .slo
        .iter()
        .filter(|s| !s.passed && s.not_measured.is_none())
        .count()
        .to_string();
    assert_eq!(suites[0].attribute("failures").unwrap(), failed_slos);
    let unmeasured = r.slo.iter().filter(|s| s.not_measured.is_some()).count();
    assert!(
        unmeasured >= 4,
        "audit_gap, audit_mismatch, scope_leak, lost_update"
    );
    assert_eq!(
        suites[0].attribute("skipped").unwrap(),
        unmeasured.to_string(),
        "a check that did not run is skipped, never passed"
    );
    let case = |suite: usize, name: &str| {
        suites[suite]
            .children()
            .find(|n| n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no case {name}"))
    };
    let failure = case(0, "p99 of create Observation <= 250 ms")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure
            .attribute("message")
            .unwrap()
            .contains("target 250 ms")
    );
    let lost = case(1, "lost_write")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        lost.attribute("message"),
        Some("3 lost_write findings (0 allowed)")
    );
    assert!(
        lost.text().unwrap().contains(MALICIOUS),
        "evidence in full, unescaped by the parser"
    );
    assert!(lost.text().unwrap().contains("obs-1001"));
    let stale = case(1, "stale_read");
    assert!(
        !stale.children().any(|n| n.has_tag_name("failure")),
        "4 of 5 allowed"
    );
    assert!(stale.children().any(|n| n.has_tag_name("system-out")));
    assert_eq!(
        suites[1]
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        11,
        "one case per finding kind; the notification kinds only when the run subscribes"
    );
    assert_eq!(
        suites[2]
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        7
    );
}

#[test]
fn the_summary_has_the_verdict_and_fits_a_pull_request_comment() {
    let r = sample();
    let md = markdown::render(&r);
    assert!(md.starts_with("### fhirsurge ❌ **FAILED**"), "{md}");
    assert!(
        md.lines().count() <= 60,
        "{} lines:\n{md}",
        md.lines().count()
    );
    let verdicts = ["| ✅ pass |", "| ❌ fail |", "| ➖ not measured |"];
    let rows = md
        .lines()
        .filter(|l| verdicts.iter().any(|v| l.contains(v)));
    assert_eq!(rows.count(), 7, "{md}");
    assert!(md.contains("p99 of create Observation \\<= 250 ms"), "{md}");
    assert!(md.contains("| create DocumentReference |"));
    assert!(md.contains("`lost_write` 3"));
    assert!(md.contains(r"\<script\>alert"), "shown literally: {md}");
    let bare = md
        .match_indices('<')
        .filter(|(i, _)| !md[..*i].ends_with('\\'));
    assert_eq!(bare.count(), 0, "no raw HTML: {md}");
    assert!(!md.contains("]("), "no link: {md}");
    let mut passed = r.clone();
    passed.slo.iter_mut().for_each(|s| s.passed = true);
    passed.passed = true;
    assert!(markdown::render(&passed).starts_with("### fhirsurge ✅ **PASSED**"));
}

#[test]
fn report_rerenders_the_same_bytes_from_report_json() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    sample().write_all(first.path()).unwrap();
    std::fs::copy(
        first.path().join("report.json"),
        second.path().join("report.json"),
    )
    .unwrap();
    let out = fhirsurge()
        .arg("report")
        .arg(second.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in fhirsurge::report::RENDERED {
        let a = std::fs::read(first.path().join(name)).unwrap();
        let b = std::fs::read(second.path().join(name)).unwrap();
        assert!(a == b, "{name} differs after re-rendering");
    }
    let empty = tempfile::tempdir().unwrap();
    let out = fhirsurge()
        .arg("report")
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report.json: cannot read"));
}

#[test]
fn reading_refuses_what_is_not_a_report_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let err = |p: &Path| Report::read(p).err().unwrap().to_string();
    assert!(err(&dir.path().join("absent.json")).contains("absent.json: cannot read"));
    assert!(err(&write("text.json", "hello")).contains("not a valid fhirsurge.report/1"));
    assert!(
        err(&write("other.json", r#"{"schema": "other/2"}"#)).contains("its schema is `other/2`")
    );
    assert!(err(&write("none.json", r#"{"run": {}}"#)).contains("no `schema` member"));
    let truncated = write("cut.json", r#"{"schema": "fhirsurge.report/1", "run": {}}"#);
    assert!(
        err(&truncated).contains("missing field"),
        "{}",
        err(&truncated)
    );
    let good = dir.path().join("good");
    std::fs::create_dir(&good).unwrap();
    sample().write(&good).unwrap();
    let path = good.join("report.json");
    let back = Report::read(&path).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        file,
        "nothing lost reading"
    );
    assert_eq!(back.findings, sample().findings);
}

#[test]
fn an_empty_run_and_a_long_one_still_render_every_chart() {
    let mut empty = sample();
    empty.operations.clear();
    empty.series.clear();
    empty.latency_series.clear();
    empty.distribution.clear();
    empty.findings.clear();
    empty.finding_counts.clear();
    empty.faults = Default::default();
    empty.visibility_lag = Default::default();
    let page = html::render(&empty);
    for chart in ["throughput", "errors", "distribution"] {
        assert_eq!(charts(&page, chart).len(), 1, "{chart}");
    }
    assert!(page.contains("no interactions recorded") && page.contains("no errors recorded"));
    assert!(page.contains("No consistency finding"));
    assert!(page.contains("No fault was configured"));
    assert!(roxmltree::Document::parse(&junit::render(&empty)).is_ok());
    assert!(markdown::render(&empty).lines().count() <= 60);

    let mut long = sample();
    let hour: Vec<_> = long.series.iter().cycle().take(3600).cloned().collect();
    long.series = hour;
    for points in long.latency_series.values_mut() {
        *points = (1..=3600)
            .map(|t| fhirsurge::metrics::Point {
                t_s: t as f64,
                ..points[t % points.len()].clone()
            })
            .collect();
    }
    let page = html::render(&long);
    let throughput = charts(&page, "throughput")[0];
    let bars = throughput.matches("<rect").count();
    assert!(bars <= 3 * 240 + 10, "binned: {bars} rects");
    assert!(page.contains("15-second bins"), "the binning is said");
    let panel = charts(&page, "latency")[0];
    assert!(
        panel.matches('L').count() < 2 * 250,
        "panel paths are binned too"
    );
    assert!(panel.contains(">1:00:00</text>"), "an hour on the clock");
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
}
