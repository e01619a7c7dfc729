//! The tables of the HTML report: operations, faults injected, consistency findings
//! (counts by kind and the first examples of each in full) and visibility lag.

use std::fmt::Write as _;

use super::escape;
use crate::check::Kind;
use crate::metrics::OpSummary;
use crate::report::{Report, figures, kind_name};

/// Examples shown in full per finding kind; the rest are in report.json.
pub const EXAMPLES_PER_KIND: usize = 10;
/// Evidence indexes listed per finding.
const EVIDENCE_SHOWN: usize = 12;

fn op_row(out: &mut String, o: &OpSummary, class: &str) {
    let l = &o.latency_ms;
    let errors: Vec<String> = o
        .errors
        .iter()
        .map(|(c, n)| format!("{} {}", c.as_str(), figures::count(*n)))
        .collect();
    let _ = write!(
        out,
        r#"<tr class="{class}"><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num{}">{}</td><td class="num{}">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="errs">{}</td></tr>"#,
        escape(&o.op),
        figures::count(o.count),
        figures::count(o.ok),
        if o.fail > 0 { " bad" } else { "" },
        figures::count(o.fail),
        if o.info > 0 { " warn" } else { "" },
        figures::count(o.info),
        figures::ms(l.p50),
        figures::ms(l.p90),
        figures::ms(l.p99),
        figures::ms(l.p999),
        figures::ms(l.max),
        figures::rate(o.throughput),
        escape(&errors.join(", ")),
    );
}

/// Every operation, then `all`, then the final read-back apart.
pub fn operations(out: &mut String, r: &Report) {
    out.push_str(r#"<section id="operations"><h2>Operations</h2><div class="scroll"><table class="ops"><thead><tr><th>operation</th><th class="num">count</th><th class="num">ok</th><th class="num">fail</th><th class="num">info</th><th class="num">p50 ms</th><th class="num">p90 ms</th><th class="num">p99 ms</th><th class="num">p99.9 ms</th><th class="num">max ms</th><th class="num">per s</th><th>errors</th></tr></thead><tbody>"#);
    for o in &r.operations {
        op_row(out, o, "");
    }
    out.push_str("</tbody><tfoot>");
    op_row(out, &r.summary.all, "total");
    if r.summary.readback.count > 0 {
        let readback = OpSummary {
            op: "final read-back (not in the figures above)".to_owned(),
            ..r.summary.readback.clone()
        };
        op_row(out, &readback, "aside");
    }
    let s = &r.summary;
    let _ = write!(
        out,
        r#"</tfoot></table></div><p class="hint">{} encounters ({} abandoned), {} retries, {} writes skipped. fail: known not to have happened; info: outcome unknown (timeout, reset, 5xx).</p></section>"#,
        figures::count(s.encounters),
        figures::count(s.abandoned_encounters),
        figures::count(s.retries),
        figures::count(s.skipped_writes),
    );
}

/// Injections by kind and the configured windows.
pub fn faults(out: &mut String, r: &Report) {
    out.push_str(r#"<section id="faults"><h2>Faults injected</h2>"#);
    let f = &r.faults;
    if f.injected.is_empty() && f.windows.is_empty() {
        out.push_str(r#"<p class="hint">No fault was configured for this run.</p></section>"#);
        return;
    }
    out.push_str(r#"<div class="cols"><table><thead><tr><th>kind</th><th class="num">injected</th></tr></thead><tbody>"#);
    for (kind, n) in &f.injected {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
            escape(kind),
            figures::count(*n)
        );
    }
    if f.injected.is_empty() {
        out.push_str(r#"<tr><td colspan="2">none recorded</td></tr>"#);
    }
    out.push_str(r#"</tbody></table><table><thead><tr><th>fault</th><th>kind</th><th class="num">probability</th><th class="num">from</th><th class="num">until</th></tr></thead><tbody>"#);
    for w in &f.windows {
        let until = w
            .until_s
            .map_or_else(|| "end of run".to_owned(), |u| format!("{} s", u));
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{} s</td><td class="num">{}</td></tr>"#,
            escape(&w.fault),
            escape(&w.kind),
            figures::percent(w.probability),
            w.from_s,
            escape(&until)
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// What each finding kind means, in a sentence.
pub fn kind_meaning(kind: Kind) -> &'static str {
    match kind {
        Kind::LostWrite => "an acknowledged write is not there at read-back",
        Kind::CorruptedWrite => "a stored resource differs from what was written",
        Kind::DuplicateWrite => "one logical write stored more than once",
        Kind::StaleRead => "an older version served after a newer one was acknowledged",
        Kind::CommittedDespiteError => "a write reported as failed was stored anyway",
        Kind::LostUpdate => "an acknowledged update was overwritten or is missing",
        Kind::InvisibleWrite => "an acknowledged write no search showed before the read-back",
        Kind::PartialTransaction => {
            "a transaction acknowledged as a whole was applied in part: entries are missing"
        }
        Kind::AuditGap => "an access that happened has no matching AuditEvent",
        Kind::AuditMismatch => "an AuditEvent does not match the access it records",
        Kind::ScopeLeak => "a search for one patient returned another patient's data",
        Kind::ScopeNotEnforced => "a token was allowed an interaction outside its scopes",
        Kind::MissedNotification => {
            "a write matching a subscription got no notification within the timeout"
        }
        Kind::DuplicateNotification => "one write's notification was delivered more than once",
        Kind::UnexpectedNotification => {
            "a notification for a write that did not match or did not happen"
        }
    }
}

fn finding_counts(out: &mut String, r: &Report) {
    out.push_str(r#"<table class="counts"><thead><tr><th>kind</th><th class="num">findings</th><th>meaning</th></tr></thead><tbody>"#);
    for (kind, n) in &r.finding_counts {
        let _ = write!(
            out,
            r#"<tr><td><code>{}</code></td><td class="num bad">{}</td><td>{}</td></tr>"#,
            escape(&kind_name(*kind)),
            figures::count(*n),
            kind_meaning(*kind)
        );
    }
    out.push_str("</tbody></table>");
}

fn evidence(indexes: &[u64]) -> String {
    let mut shown: Vec<String> = indexes
        .iter()
        .take(EVIDENCE_SHOWN)
        .map(|i| format!("#{i}"))
        .collect();
    if indexes.len() > EVIDENCE_SHOWN {
        shown.push(format!("+{} more", indexes.len() - EVIDENCE_SHOWN));
    }
    shown.join(" ")
}

fn examples(out: &mut String, r: &Report, kind: Kind) {
    let all: Vec<_> = r.findings.iter().filter(|f| f.kind == kind).collect();
    let name = kind_name(kind);
    let _ = write!(
        out,
        r#"<h3><code>{}</code> — {} finding{}</h3><div class="scroll"><table class="findings"><colgroup><col><col><col><col><col></colgroup><thead><tr><th>resource</th><th>id</th><th>identifier</th><th>detail</th><th>history evidence</th></tr></thead><tbody>"#,
        escape(&name),
        figures::count(all.len() as u64),
        if all.len() == 1 { "" } else { "s" }
    );
    for f in all.iter().take(EXAMPLES_PER_KIND) {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="mono">{}</td><td class="mono">{}</td><td>{}</td><td class="mono">{}</td></tr>"#,
            escape(&f.resource_type),
            escape(f.id.as_deref().unwrap_or("—")),
            escape(f.identifier.as_deref().unwrap_or("—")),
            escape(&f.detail),
            escape(&evidence(&f.evidence)),
        );
    }
    out.push_str("</tbody></table></div>");
    if all.len() > EXAMPLES_PER_KIND {
        let _ = write!(
            out,
            r#"<p class="hint">{} more <code>{}</code> findings are in report.json.</p>"#,
            figures::count((all.len() - EXAMPLES_PER_KIND) as u64),
            escape(&name)
        );
    }
}

/// The checker's own counters, whatever they are, folded away.
fn checker_counters(out: &mut String, r: &Report) {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&r.checked) else {
        return;
    };
    let counters: Vec<(String, u64)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.replace('_', " "), v.as_u64()?)))
        .collect();
    if counters.is_empty() {
        return;
    }
    out.push_str(r#"<details class="counters"><summary>What the checker examined</summary><dl class="meta">"#);
    for (name, n) in counters {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            escape(&name),
            figures::count(n)
        );
    }
    out.push_str("</dl></details>");
}

/// Counts by kind, then the first examples of each kind in full.
pub fn findings(out: &mut String, r: &Report) {
    out.push_str(r#"<section id="findings"><h2>Consistency findings</h2>"#);
    let c = &r.checked;
    let _ = write!(
        out,
        r#"<p class="hint">{} writes verified at read-back, {} could not be verified. Evidence numbers point into history.jsonl.zst.</p>"#,
        figures::count(c.writes_checked()),
        figures::count(c.writes_unverified()),
    );
    if r.findings.is_empty() && r.finding_counts.values().all(|n| *n == 0) {
        out.push_str(r#"<p class="clean">No consistency finding: every acknowledged write was found again, exactly once, unaltered.</p>"#);
    } else {
        finding_counts(out, r);
        for kind in r.finding_counts.keys() {
            examples(out, r, *kind);
        }
    }
    checker_counters(out, r);
    out.push_str("</section>");
}

/// How long a new write took to show up in search.
pub fn lag(out: &mut String, r: &Report) {
    let l = &r.visibility_lag.lag;
    out.push_str(r#"<section id="lag"><h2>Visibility lag</h2>"#);
    let (Some(p50), Some(p99), Some(max)) = (l.p50_ms, l.p99_ms, l.max_ms) else {
        let _ = write!(
            out,
            r#"<p class="hint">Not measured: no write was searched for after it was acknowledged ({} never seen).</p></section>"#,
            figures::count(l.never_visible)
        );
        return;
    };
    let _ = write!(
        out,
        r#"<p>Time from a write's acknowledgement to its first appearance in a search, over {} writes.</p><section class="tiles small"><div class="tile"><div class="k">p50</div><div class="v">{} ms</div></div><div class="tile"><div class="k">p99</div><div class="v">{} ms</div></div><div class="tile"><div class="k">max</div><div class="v">{} ms</div></div><div class="tile"><div class="k">never seen</div><div class="v">{}</div></div></section></section>"#,
        figures::count(l.samples),
        figures::ms(p50),
        figures::ms(p99),
        figures::ms(max),
        figures::count(l.never_visible),
    );
}
