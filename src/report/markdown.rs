//! `summary.md`: the report as a pull-request comment — GitHub-flavoured Markdown, about
//! 60 lines at most, no link: the verdict, the scorecard, the failed objectives, the
//! slowest operations and the consistency findings with an example or two. Rendered from
//! a [`Report`] alone; every piece of text from the run is escaped.

use std::fmt::Write as _;

use super::{Report, Verdict, figures, kind_name};

/// Failed objectives listed at most.
const FAILED_SHOWN: usize = 8;
/// Operations in the table at most.
const OPS_SHOWN: usize = 6;
/// Findings quoted in full at most.
const FINDINGS_SHOWN: usize = 2;
/// Characters kept of a free-text detail, and of a question's evidence.
const DETAIL_CHARS: usize = 200;
const EVIDENCE_CHARS: usize = 360;

/// Escapes text so Markdown shows it literally: no markup, no HTML, no table break,
/// one line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A code span around `s`, fenced with more backticks than `s` holds in a row (GitHub
/// neither autolinks nor interprets anything inside).
fn code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    s.chars()
        .take(max - 1)
        .chain(std::iter::once('…'))
        .collect()
}

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅ pass",
        Verdict::Fail => "❌ fail",
        Verdict::NotMeasured => "➖ not measured",
    }
}

/// The whole comment.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    if r.bodies_stored {
        let _ = writeln!(out, "> ⚠️ **{}**\n", super::BODIES_WARNING);
    }
    verdict(&mut out, r);
    scorecard(&mut out, r);
    failed_slos(&mut out, r);
    operations(&mut out, r);
    growth(&mut out, r);
    if let Some(h) = &r.history {
        let _ = writeln!(out, "\n{}", h.sentence());
    }
    notifications(&mut out, r);
    findings(&mut out, r);
    out
}

/// The growth slopes, or why growth was not measured.
fn growth(out: &mut String, r: &Report) {
    let Some(g) = &r.growth else { return };
    out.push_str("\n## Growth\n\n");
    let _ = writeln!(
        out,
        "Resources held ({}): {} at the end; windows of {:.0} s; server count {}.\n",
        escape(&g.resources_source),
        g.resources_held,
        g.window_s,
        escape(&g.server_count)
    );
    if let Some(reason) = &g.reason {
        let lead = if g.measured {
            "Partly: "
        } else {
            "Not measured: "
        };
        let _ = writeln!(out, "{lead}{}\n", escape(reason));
    }
    for s in &g.slopes {
        let _ = writeln!(out, "- {}", escape(&s.line));
    }
}

/// The notification judging, for runs with subscriptions.
fn notifications(out: &mut String, r: &Report) {
    let Some(n) = &r.notifications else { return };
    out.push_str("\n## Notifications\n\n");
    if !n.measured {
        let reason = n.reason.as_deref().unwrap_or("");
        let _ = writeln!(out, "Not measured: {}", escape(reason));
        return;
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
    let _ = writeln!(
        out,
        "{} owed, {} notified in time, {} missed, {} duplicated, {} unexpected; latency p50 {}, p99 {}, max {}; {} deliveries refused by the receiver, {} redelivered; {} gaps in event numbers.",
        n.expected,
        n.notified,
        n.missed,
        n.duplicated,
        n.unexpected,
        ms(n.latency.p50_ms),
        ms(n.latency.p99_ms),
        ms(n.latency.max_ms),
        n.refused,
        n.redelivered,
        n.gaps.len()
    );
}

fn verdict(out: &mut String, r: &Report) {
    let met = r.slo.iter().filter(|s| s.passed).count();
    let word = if r.passed {
        "✅ **PASSED**"
    } else {
        "❌ **FAILED**"
    };
    let s = &r.summary;
    let measured = r.slo.iter().filter(|s| s.not_measured.is_none()).count();
    let _ = writeln!(
        out,
        "### fhirsurge {word}: {met} of {measured} objectives met ({} not measured)\n",
        r.slo.len() - measured
    );
    let _ = writeln!(
        out,
        "Scenario {} against {} (profile {}, seed {}, fhirsurge {}): {} encounters, {} interactions in {} ({}/s), {} fail, {} info.",
        code(&r.run.scenario),
        code(&r.run.target),
        code(&r.run.profile),
        r.run.seed,
        escape(&r.run.version),
        figures::count(s.encounters),
        figures::count(s.interactions),
        figures::duration(s.load_s),
        figures::rate(s.throughput),
        figures::count(s.fail),
        figures::count(s.info),
    );
    if r.run.interrupted {
        out.push_str(
            "\n> ⚠️ **Interrupted**: the run was stopped early; this report is partial.\n",
        );
    }
}

fn scorecard(out: &mut String, r: &Report) {
    out.push_str("\n| readiness question | verdict | evidence |\n|---|---|---|\n");
    for q in &r.scorecard {
        let evidence = escape(&clip(&q.evidence.join("; "), EVIDENCE_CHARS));
        let _ = writeln!(
            out,
            "| {} | {} | {evidence} |",
            escape(&q.question),
            mark(q.verdict)
        );
    }
}

fn failed_slos(out: &mut String, r: &Report) {
    let failed: Vec<_> = r
        .slo
        .iter()
        .filter(|s| !s.passed && s.not_measured.is_none())
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n**Objectives not met ({})**\n", failed.len());
    for s in failed.iter().take(FAILED_SHOWN) {
        let _ = writeln!(
            out,
            "- ❌ {}: {}",
            escape(&s.name),
            escape(&clip(&s.detail, DETAIL_CHARS))
        );
    }
    if failed.len() > FAILED_SHOWN {
        let _ = writeln!(out, "- … and {} more", failed.len() - FAILED_SHOWN);
    }
}

fn operations(out: &mut String, r: &Report) {
    if r.operations.is_empty() {
        return;
    }
    let mut ops: Vec<_> = r.operations.iter().collect();
    ops.sort_by(|a, b| b.latency_ms.p99.total_cmp(&a.latency_ms.p99));
    let shown = ops.len().min(OPS_SHOWN);
    let _ = writeln!(
        out,
        "\n**Slowest operations** ({shown} of {}, by p99)\n\n| operation | count | fail | info | p50 ms | p99 ms | max ms |\n|---|--:|--:|--:|--:|--:|--:|",
        ops.len()
    );
    for o in ops
        .iter()
        .take(OPS_SHOWN)
        .copied()
        .chain(std::iter::once(&r.summary.all))
    {
        let l = &o.latency_ms;
        let name = if std::ptr::eq(o, &r.summary.all) {
            "**all**".to_owned()
        } else {
            escape(&o.op)
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            figures::count(o.count),
            figures::count(o.fail),
            figures::count(o.info),
            figures::ms(l.p50),
            figures::ms(l.p99),
            figures::ms(l.max),
        );
    }
}

fn findings(out: &mut String, r: &Report) {
    let total: u64 = r.finding_counts.values().sum();
    if total == 0 {
        let _ = writeln!(
            out,
            "\n**Consistency**: no finding; {} writes verified at read-back.",
            figures::count(r.checked.writes_checked())
        );
        return;
    }
    let counts: Vec<String> = r
        .finding_counts
        .iter()
        .map(|(k, n)| format!("{} {}", code(&kind_name(*k)), figures::count(*n)))
        .collect();
    let _ = writeln!(
        out,
        "\n**Consistency**: {} findings: {}\n",
        figures::count(total),
        counts.join(", ")
    );
    for f in r.findings.iter().take(FINDINGS_SHOWN) {
        let _ = writeln!(
            out,
            "- {} {}/{} ({}): {}",
            code(&kind_name(f.kind)),
            escape(&f.resource_type),
            escape(f.id.as_deref().unwrap_or("?")),
            escape(f.identifier.as_deref().unwrap_or("no identifier")),
            escape(&clip(&f.detail, DETAIL_CHARS)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_become_markup() {
        assert_eq!(escape("<b>|x|</b>\n[a](b)"), r"\<b\>\|x\|\</b\> \[a\](b)");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
    }
}
