//! `junit.xml` for CI trackers: one `<testsuite>` per group — `slo` (every objective),
//! `consistency` (one test case per finding kind, failing with its first findings in
//! full) and `scorecard` (the five questions; not measured is skipped). Written by hand
//! from a [`Report`] alone; every text and attribute is escaped for XML 1.0.

use std::fmt::Write as _;

use super::{Report, SloResult, Verdict, figures, kind_name};
use crate::check::{Finding, Kind};
use crate::vocab::finding::{FINDING_KINDS, NOTIFICATION_KINDS};

/// Findings written out in full per failing kind.
pub const EXAMPLES_PER_KIND: usize = 20;

/// One test case.
struct Case {
    class: String,
    name: String,
    /// `(message, type, body)` of a failure.
    failure: Option<(String, String, String)>,
    skipped: Option<String>,
    out: String,
}

/// Escapes text for XML content and quoted attributes; characters XML 1.0 forbids
/// become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The whole document.
pub fn render(r: &Report) -> String {
    let suites = [
        ("slo", slo_cases(r)),
        ("consistency", consistency_cases(r)),
        ("scorecard", scorecard_cases(r)),
    ];
    let tests: usize = suites.iter().map(|(_, c)| c.len()).sum();
    let failures: usize = suites.iter().map(|(_, c)| failed(c)).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if r.bodies_stored {
        let _ = writeln!(out, "<!-- {} -->", super::BODIES_WARNING);
    }
    let _ = writeln!(
        out,
        r#"<testsuites name="fhirsurge {}" tests="{tests}" failures="{failures}" errors="0" skipped="{}" time="{:.3}">"#,
        escape(&r.run.id),
        suites.iter().map(|(_, c)| skipped(c)).sum::<usize>(),
        r.summary.load_s,
    );
    for (name, cases) in &suites {
        suite(&mut out, r, name, cases);
    }
    out.push_str("</testsuites>\n");
    out
}

fn failed(cases: &[Case]) -> usize {
    cases.iter().filter(|c| c.failure.is_some()).count()
}

fn skipped(cases: &[Case]) -> usize {
    cases.iter().filter(|c| c.skipped.is_some()).count()
}

fn suite(out: &mut String, r: &Report, name: &str, cases: &[Case]) {
    let _ = writeln!(
        out,
        r#"  <testsuite name="{name}" tests="{}" failures="{}" errors="0" skipped="{}" time="{:.3}" timestamp="{}">"#,
        cases.len(),
        failed(cases),
        skipped(cases),
        r.summary.load_s,
        escape(&r.run.started_at),
    );
    properties(out, r);
    for c in cases {
        case(out, c);
    }
    out.push_str("  </testsuite>\n");
}

fn properties(out: &mut String, r: &Report) {
    let run = &r.run;
    let props = [
        ("run", run.id.as_str()),
        ("scenario", &run.scenario),
        ("target", &run.target),
        ("profile", &run.profile),
        ("seed", &run.seed.to_string()),
        ("version", &run.version),
        ("retry_policy", &run.retry_policy),
        (
            "interrupted",
            if run.interrupted { "true" } else { "false" },
        ),
    ]
    .map(|(k, v)| format!(r#"      <property name="{k}" value="{}"/>"#, escape(v)));
    let _ = writeln!(
        out,
        "    <properties>\n{}\n    </properties>",
        props.join("\n")
    );
}

fn case(out: &mut String, c: &Case) {
    let _ = write!(
        out,
        r#"    <testcase classname="{}" name="{}" time="0.000""#,
        escape(&c.class),
        escape(&c.name)
    );
    if c.failure.is_none() && c.skipped.is_none() && c.out.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    if let Some((message, kind, body)) = &c.failure {
        let _ = writeln!(
            out,
            r#"      <failure message="{}" type="{}">{}</failure>"#,
            escape(message),
            escape(kind),
            escape(body)
        );
    }
    if let Some(message) = &c.skipped {
        let _ = writeln!(out, r#"      <skipped message="{}"/>"#, escape(message));
    }
    if !c.out.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", escape(&c.out));
    }
    out.push_str("    </testcase>\n");
}

fn slo_case(s: &SloResult) -> Case {
    let observed = s.observed.map_or_else(
        || "not measured".to_owned(),
        |o| figures::in_unit(o, &s.unit),
    );
    let target = figures::in_unit(s.target, &s.unit);
    let body = format!(
        "objective: {}\nobserved: {observed}\ntarget: {target}\ndetail: {}",
        s.name, s.detail
    );
    // The checker's detail usually says it all; when it does not, the figures go first.
    let message = if s.detail.starts_with("observed ") || s.detail.starts_with("not measured") {
        s.detail.clone()
    } else {
        format!("observed {observed}, target {target}: {}", s.detail)
    };
    Case {
        class: format!("fhirsurge.slo.{}", s.kind),
        name: s.name.clone(),
        failure: (!s.passed && s.not_measured.is_none())
            .then(|| (message, s.kind.clone(), body.clone())),
        skipped: s
            .not_measured
            .as_ref()
            .map(|why| format!("not measured: {why}")),
        out: if s.passed { body } else { String::new() },
    }
}

fn slo_cases(r: &Report) -> Vec<Case> {
    r.slo.iter().map(slo_case).collect()
}

/// One finding, every field, on a few lines.
pub fn describe(f: &Finding) -> String {
    let evidence: Vec<String> = f.evidence.iter().map(u64::to_string).collect();
    format!(
        "{} {}/{} identifier {}\n  {}\n  evidence (history records): {}",
        kind_name(f.kind),
        f.resource_type,
        f.id.as_deref().unwrap_or("?"),
        f.identifier.as_deref().unwrap_or("-"),
        f.detail,
        if evidence.is_empty() {
            "-".to_owned()
        } else {
            evidence.join(", ")
        }
    )
}

fn examples(r: &Report, kind: Kind, total: u64) -> String {
    let mut lines: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.kind == kind)
        .take(EXAMPLES_PER_KIND)
        .map(describe)
        .collect();
    let shown = lines.len() as u64;
    if total > shown {
        lines.push(format!("… and {} more in report.json", total - shown));
    }
    lines.join("\n")
}

/// One case per finding kind the checker knows; it fails when its SLO failed (or, with
/// no SLO for it, when there is any finding), tolerated findings go to system-out.
/// Notification kinds only for runs with subscriptions; skipped when not measured.
fn consistency_cases(r: &Report) -> Vec<Case> {
    FINDING_KINDS
        .iter()
        .filter(|k| r.notifications.is_some() || !NOTIFICATION_KINDS.contains(k))
        .filter_map(|name| super::slo::kind_of(name).map(|k| (*name, k)))
        .map(|(name, kind)| {
            let count = r.finding_counts.get(&kind).copied().unwrap_or(0);
            let slo = r
                .slo
                .iter()
                .find(|s| s.kind == "findings" && s.name.starts_with(&format!("{name} ")));
            let skipped = slo.and_then(|s| s.not_measured.clone());
            let failed = skipped.is_none() && slo.map_or(count > 0, |s| !s.passed);
            let allowed = slo.map_or(0.0, |s| s.target);
            let message = format!("{count} {name} findings ({allowed} allowed)");
            let body = examples(r, kind, count);
            Case {
                class: "fhirsurge.consistency".to_owned(),
                name: name.to_owned(),
                failure: failed.then(|| (message.clone(), name.to_owned(), body.clone())),
                skipped: skipped.map(|why| format!("not measured: {why}")),
                out: if !failed && count > 0 {
                    format!("{message}\n{body}")
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

fn scorecard_cases(r: &Report) -> Vec<Case> {
    r.scorecard
        .iter()
        .map(|q| {
            let evidence = q.evidence.join("\n");
            Case {
                class: "fhirsurge.scorecard".to_owned(),
                name: format!("{}: {}", q.id, q.question),
                failure: (q.verdict == Verdict::Fail).then(|| {
                    (
                        q.evidence.first().cloned().unwrap_or_default(),
                        "scorecard".to_owned(),
                        evidence.clone(),
                    )
                }),
                skipped: (q.verdict == Verdict::NotMeasured).then(|| "not measured".to_owned()),
                out: if q.verdict == Verdict::Pass {
                    evidence
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_forbidden_character() {
        let s = escape("a<b>&\"c'\u{0}\u{1b}\n");
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}\u{fffd}\n");
    }
}
