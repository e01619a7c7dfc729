//! `report.html`: one self-contained page — inline CSS and inline SVG, no script, no
//! font, image or link fetched from anywhere (a Content-Security-Policy of
//! `default-src 'none'` says so to the browser too) — rendered from a [`Report`] alone
//! for the people who sign off: the readiness scorecard first, then the SLOs, the run,
//! the charts and the tables behind them. Every piece of text goes through [`escape`].
//! Uses `report`, `metrics`, `check` (finding kinds) and `vocab` (error classes)
//! types only.

mod charts;
mod growth;
mod latency;
mod svg;
mod tables;

use std::fmt::Write as _;

use super::{Report, Verdict, figures};

const STYLE: &str = include_str!("style.css");

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(256 * 1024);
    head(&mut out, r);
    if r.bodies_stored {
        let _ = write!(
            out,
            r#"<div class="banner">{}</div>"#,
            escape(super::BODIES_WARNING)
        );
    }
    header(&mut out, r);
    out.push_str("<main>");
    scorecard(&mut out, r);
    slos(&mut out, r);
    run_info(&mut out, r);
    chart_section(&mut out, r);
    growth::section(&mut out, r);
    if let Some(h) = &r.history {
        let _ = write!(
            out,
            r#"<section id="history"><p class="hint">{}</p></section>"#,
            escape(&h.sentence())
        );
    }
    tables::operations(&mut out, r);
    tables::faults(&mut out, r);
    tables::findings(&mut out, r);
    tables::lag(&mut out, r);
    out.push_str("</main>");
    let _ = write!(
        out,
        r#"<footer>Rendered by fhirsurge {} from report.json ({}). Run {} · seed {}.</footer></body></html>"#,
        escape(&r.run.version),
        escape(&r.schema),
        escape(&r.run.id),
        r.run.seed
    );
    out.push('\n');
    out
}

/// Escapes text for HTML (element content and quoted attributes alike); control
/// characters other than tab and newline become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn head(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"><meta name="referrer" content="no-referrer"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="generator" content="fhirsurge {}"><title>fhirsurge · {} · {}</title><style>{STYLE}</style></head><body>"#,
        escape(&r.run.version),
        escape(&r.run.scenario),
        if r.passed { "passed" } else { "failed" },
    );
}

fn header(out: &mut String, r: &Report) {
    let met = r.slo.iter().filter(|s| s.passed).count();
    let (class, word) = if r.passed {
        ("pass", "PASSED")
    } else {
        ("fail", "FAILED")
    };
    let _ = write!(
        out,
        r#"<header><div class="brand">fhirsurge · production-readiness report</div><div class="headline"><div><h1>{}</h1><p class="sub">against <strong>{}</strong> · profile {} · {}</p></div><div class="verdict {class}"><span>{word}</span><small>{met} of {} objectives met</small></div></div></header>"#,
        escape(&r.run.scenario),
        escape(&r.run.target),
        escape(&r.run.profile),
        escape(&when(&r.run.started_at)),
        r.slo.len(),
    );
    if r.run.interrupted {
        out.push_str(r#"<div class="banner">Run interrupted before the end of the load phase: this report is partial. Figures cover only what ran; a partial run proves nothing about the rest.</div>"#);
    }
    key_figures(out, r);
}

/// An RFC 3339 time as `2025-01-06 08:00:00 UTC`; anything else as it is.
fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        },
    )
}

fn key_figures(out: &mut String, r: &Report) {
    let s = &r.summary;
    let not_ok = s.fail + s.info;
    let rate = if s.interactions > 0 {
        not_ok as f64 / s.interactions as f64
    } else {
        0.0
    };
    let findings = r.finding_counts.values().sum::<u64>();
    let injected = r.faults.injected.values().sum::<u64>();
    let tiles = [
        ("encounters", figures::count(s.encounters), String::new()),
        (
            "interactions",
            figures::count(s.interactions),
            format!(
                "{} fail · {} info",
                figures::count(s.fail),
                figures::count(s.info)
            ),
        ),
        (
            "throughput",
            format!("{}/s", figures::rate(s.throughput)),
            format!("over {}", figures::duration(s.load_s)),
        ),
        (
            "p99 latency",
            format!("{} ms", figures::ms(s.all.latency_ms.p99)),
            format!("p50 {} ms", figures::ms(s.all.latency_ms.p50)),
        ),
        (
            "error rate",
            figures::percent(rate),
            "fail + info".to_owned(),
        ),
        (
            "consistency findings",
            figures::count(findings),
            format!("{} faults injected", figures::count(injected)),
        ),
    ];
    out.push_str(r#"<section class="tiles">"#);
    for (name, value, note) in tiles {
        let _ = write!(
            out,
            r#"<div class="tile"><div class="k">{name}</div><div class="v">{}</div><div class="n">{}</div></div>"#,
            escape(&value),
            escape(&note)
        );
    }
    out.push_str("</section>");
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NotMeasured => "na",
    }
}

fn scorecard(out: &mut String, r: &Report) {
    out.push_str(r#"<section id="scorecard"><h2>Readiness scorecard</h2><ol class="scorecard">"#);
    for q in &r.scorecard {
        let _ = write!(
            out,
            r#"<li class="q {c}"><span class="pill {c}">{}</span><div><h3>{}</h3><ul>"#,
            q.verdict.as_str(),
            escape(&q.question),
            c = verdict_class(q.verdict),
        );
        for line in &q.evidence {
            let _ = write!(out, "<li>{}</li>", escape(line));
        }
        out.push_str("</ul></div></li>");
    }
    out.push_str("</ol></section>");
}

fn slos(out: &mut String, r: &Report) {
    out.push_str(r#"<section id="slo"><h2>Service-level objectives</h2>"#);
    if r.slo.is_empty() {
        out.push_str(r#"<p class="hint">The scenario sets no objectives.</p></section>"#);
        return;
    }
    out.push_str(r#"<table><thead><tr><th>result</th><th>objective</th><th class="num">target</th><th class="num">observed</th><th>detail</th></tr></thead><tbody>"#);
    let mut ordered: Vec<_> = r.slo.iter().collect();
    ordered.sort_by_key(|s| s.passed);
    for s in ordered {
        let (c, word) = match (s.passed, &s.not_measured) {
            (_, Some(_)) => ("skip", "not measured"),
            (true, None) => ("pass", "pass"),
            (false, None) => ("fail", "fail"),
        };
        let observed = s.observed.map_or_else(
            || "not measured".to_owned(),
            |o| figures::in_unit(o, &s.unit),
        );
        // "observed X, target Y" repeats the columns; anything else adds to them.
        let detail = if s.detail.starts_with("observed ") {
            ""
        } else {
            s.detail.as_str()
        };
        let _ = write!(
            out,
            r#"<tr class="{c}"><td><span class="pill {c}">{word}</span></td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            escape(&s.name),
            escape(&figures::in_unit(s.target, &s.unit)),
            escape(&observed),
            escape(detail)
        );
    }
    out.push_str("</tbody></table></section>");
}

fn run_info(out: &mut String, r: &Report) {
    let run = &r.run;
    let l = &run.load;
    let mut shape = format!(
        "{} model, {} users, {}",
        l.model,
        l.users,
        figures::duration(l.duration_s)
    );
    if let Some(rate) = l.rate {
        let _ = write!(shape, ", {} encounters/s", figures::rate(rate));
    }
    if let Some(plan) = &l.test_plan {
        let _ = write!(shape, ", test plan {plan}");
    }
    let rows = [
        (
            "scenario",
            format!("{} ({})", run.scenario, run.scenario_path),
        ),
        ("target", run.target.clone()),
        ("profile", run.profile.clone()),
        ("seed", run.seed.to_string()),
        ("started", when(&run.started_at)),
        ("ended", when(&run.ended_at)),
        ("load shape", shape),
        ("retry policy", run.retry_policy.clone()),
        ("namespace", run.namespace.clone()),
        ("run id", run.id.clone()),
        ("fhirsurge", run.version.clone()),
        (
            "interrupted",
            if run.interrupted {
                "yes: partial report"
            } else {
                "no"
            }
            .to_owned(),
        ),
    ];
    out.push_str(r#"<section id="run"><h2>The run</h2><dl class="meta">"#);
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{}</dd>", escape(&v));
    }
    out.push_str("</dl></section>");
}

fn chart_section(out: &mut String, r: &Report) {
    let clock = charts::Clock::of(r);
    let binning = if clock.bin > 1.0 {
        format!(" Bars and points are {}-second bins.", clock.bin)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r#"<section id="charts"><h2>Load and latency</h2><p class="hint">Run time on the x axes; shaded: fault windows.{binning}</p><figure><figcaption>Throughput: interactions per second by outcome (ok · fail: known not to have happened · info: outcome unknown)</figcaption>"#
    );
    charts::throughput(out, r, &clock);
    out.push_str("</figure><figure><figcaption>Errors per second by class</figcaption>");
    charts::errors(out, r, &clock);
    out.push_str("</figure><figure><figcaption>Latency distribution by percentile: all operations and the slowest ones</figcaption>");
    latency::distribution(out, r);
    out.push_str(
        r#"</figure><h3>Latency over time, per operation (slowest first)</h3><div class="panels">"#,
    );
    latency::panels(out, r, &clock);
    out.push_str("</div></section>");
}
