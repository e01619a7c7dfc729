//! The report: `report.json` (schema `fhirsurge.report/1`, canonical — `report.html`,
//! `junit.xml` and `summary.md` are rendered from it alone, so `fhirsurge report RUN_DIR`
//! re-renders them byte for byte), the short table on the terminal, and the comparison
//! of two reports. Uses `metrics`, `check` (its result types) and `vocab` (finding
//! kinds, SLO targets, error classes); knows nothing of how the run was driven.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::{Finding, Kind, Lag, Stats};
use crate::metrics::{OpSummary, Point, Second};

pub mod access;
pub mod compare;
pub mod figures;
pub mod growth;
pub mod html;
pub mod junit;
pub mod mapping;
pub mod markdown;
pub mod notifications;
pub mod scorecard;
pub mod slo;
pub mod workload;
pub use compare::{Comparison, Margins, compare};
pub use mapping::Mapping;
pub use scorecard::{Question, Verdict};
pub use slo::SloResult;
pub use workload::Workload;

/// The files rendered from `report.json`, in the order they are written.
pub const RENDERED: [&str; 3] = ["report.html", "junit.xml", "summary.md"];

pub const SCHEMA: &str = "fhirsurge.report/1";

/// Writes `bytes` to `path` whole or not at all (a full disk leaves no truncated
/// report): into a temporary file beside it, then renamed over it.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// What every rendering says first when the run stored answers' bodies.
pub const BODIES_WARNING: &str = "WARNING: response bodies were stored (bodies.jsonl.zst in the run directory, credentials redacted) and may contain PHI: handle this run directory as patient data.";

/// The canonical report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub run: RunInfo,
    /// Whether every SLO (the consistency ones included) was met.
    pub passed: bool,
    /// The five readiness questions, answered.
    pub scorecard: Vec<Question>,
    pub slo: Vec<SloResult>,
    pub summary: Summary,
    pub operations: Vec<OpSummary>,
    /// One entry per second of the run.
    pub series: Vec<Second>,
    /// Per operation: latency over time, one point per second that had samples.
    pub latency_series: BTreeMap<String, Vec<Point>>,
    /// Per operation and `all`: `[percentile, ms]` pairs of the whole load phase.
    pub distribution: BTreeMap<String, Vec<(f64, f64)>>,
    pub faults: Faults,
    /// How the run spoke the EHR's dialect (absent from reports of older versions).
    #[serde(default)]
    pub mapping: Mapping,
    pub findings: Vec<Finding>,
    pub finding_counts: BTreeMap<Kind, u64>,
    pub visibility_lag: VisibilityLag,
    pub checked: Stats,
    /// How the load was shaped: whole encounters' latency, the open model's schedule.
    #[serde(default, skip_serializing_if = "Workload::is_empty")]
    pub workload: Workload,
    /// True when the run did not go its full course (stopped by a signal): figures cover
    /// only what ran, and what was not read back is unchecked, never lost.
    #[serde(default)]
    pub partial: bool,
    /// Why the report is partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
    /// How a stopped run was wound down (absent when it ran its course).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Whether answers' bodies were written to `bodies.jsonl.zst` (`--store-bodies`):
    /// they may hold PHI, and every rendering says so at its top.
    #[serde(default)]
    pub bodies_stored: bool,
    /// Audit trail, leak and scope checks (absent from reports of older versions).
    #[serde(default)]
    pub access: access::Access,
    /// Notification judging, for runs with `[subscriptions]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<crate::check::notify::Notifications>,
    /// p99 and throughput per operation against the resources the target held (absent
    /// from reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<growth::Growth>,
    /// What the history file kept (absent from reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryKept>,
}

/// What the run's history file kept of the records the run's checker saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryKept {
    /// The `[history] keep` mode (`full`, `writes`, `sample:P`).
    pub keep: crate::vocab::keep::Keep,
    /// Records the run produced (all of them judged live).
    pub records: u64,
    /// Records written to the history file.
    pub kept: u64,
    /// Records left out of the file (load-phase reads and searches and their completions).
    pub dropped: u64,
}

impl HistoryKept {
    /// One sentence for the summary.
    pub fn sentence(&self) -> String {
        match self.keep {
            crate::vocab::keep::Keep::Full => {
                format!("History: kept whole ({} records).", self.records)
            }
            k => format!(
                "History: keep = \"{k}\": {} of {} records in the file ({} load-phase reads and searches dropped); the run's checker saw all of them, an offline `fhirsurge check` cannot measure the read-based kinds.",
                self.kept, self.records, self.dropped
            ),
        }
    }
}

/// How a run stopped by a signal (or by a failed history write) was wound down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// What asked (`SIGINT`, `SIGTERM`).
    pub signal: String,
    /// Seconds after the start of the load phase.
    pub at_s: f64,
    /// The grace period given to in-flight requests, in seconds.
    pub grace_s: f64,
    /// The read-back's budget after the stop, in seconds.
    pub readback_budget_s: f64,
    pub readback: ReadbackEnd,
    /// When the stop came from a failed history write (the disk filled): the error and
    /// where the history on disk ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_end: Option<HistoryEnd>,
}

/// Where the history of a run stopped by a failed write ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEnd {
    /// The write error.
    pub error: String,
    /// Complete lines on disk (what `fhirsurge check` reads), when it could be read back.
    pub lines: Option<u64>,
    /// The file's size in bytes, when it could be read back.
    pub bytes: Option<u64>,
}

impl HistoryEnd {
    /// `after line N (byte M)`, or that it could not be read back.
    pub fn position(&self) -> String {
        match (self.lines, self.bytes) {
            (Some(l), Some(b)) => format!("after line {l} (byte {b})"),
            _ => "at an unknown point (it could not be read back)".to_owned(),
        }
    }
}

/// How far the read-back of a stopped run went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadbackEnd {
    /// Everything written was read back.
    Complete,
    /// The budget ran out (or a second request came) part way: the rest is unchecked.
    Cut,
    /// A second request came before it began: every write is unchecked.
    Skipped,
}

/// The probed visibility lag (`check::Lag`'s figures), its resolution and the probes'
/// own load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisibilityLag {
    #[serde(flatten)]
    pub lag: Lag,
    /// The probe interval: the resolution of the figures (`None`: nothing was probed).
    #[serde(default)]
    pub interval_ms: Option<f64>,
    #[serde(default)]
    pub probes: ProbeLoad,
}

/// What the visibility prober did and cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeLoad {
    /// Acknowledged creates probed.
    pub probed: u64,
    /// Left out by `[visibility] sample`.
    pub not_sampled: u64,
    /// Not probed: `[visibility] concurrency` probes were running.
    pub busy: u64,
    /// Not probed: the EHR cannot take a search by identifier for the type.
    pub unsearchable: u64,
    /// Probe searches sent, and their rate over the load phase.
    pub requests: u64,
    pub per_second: f64,
    /// Probe search latency, all types together.
    pub latency_p99_ms: f64,
}

/// What was run, against what, when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub scenario: String,
    pub scenario_path: String,
    /// `mock` or the target's base URL (never with credentials).
    pub target: String,
    pub profile: String,
    pub seed: u64,
    pub version: String,
    pub started_at: String,
    pub ended_at: String,
    pub load: LoadInfo,
    pub retry_policy: String,
    /// `identifier.system` of every resource the harness wrote.
    pub namespace: String,
    /// True when the run was stopped early (Ctrl-C): the report is partial.
    pub interrupted: bool,
    /// True when TLS certificate verification was off (`[tls] insecure`, `--insecure`).
    #[serde(default)]
    pub tls_insecure: bool,
}

/// The load shape that was asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadInfo {
    pub model: String,
    pub users: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_plan: Option<String>,
    pub duration_s: f64,
    /// Open model: the rate plan as written (`rate` is then its peak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_plan: Option<String>,
    /// Open model: the most users the pool may grow to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_users: Option<u64>,
}

/// Totals.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub encounters: u64,
    /// The most encounters in flight at once during the load phase, as measured.
    #[serde(default)]
    pub peak_concurrency: u64,
    pub abandoned_encounters: u64,
    /// Encounters still in flight when the grace period after a stop (or after the load
    /// phase's planned end) ran out; their unanswered requests are recorded `info`.
    #[serde(default)]
    pub cut_off_encounters: u64,
    pub skipped_writes: u64,
    /// Interactions the client re-sent (each attempt counts in `interactions`).
    pub retries: u64,
    pub interactions: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// Load-phase length in seconds.
    pub load_s: f64,
    /// Interactions per second over the load phase.
    pub throughput: f64,
    /// The load phase's interactions, all operations together.
    pub all: OpSummary,
    /// The final read-back's interactions, all together (not in the figures above).
    pub readback: OpSummary,
}

/// What was injected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Injections counted by fault kind (from the injectors' ledgers).
    pub injected: BTreeMap<String, u64>,
    /// The configured fault windows.
    pub windows: Vec<FaultWindow>,
}

/// A configured fault and its window on the run clock.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultWindow {
    pub fault: String,
    pub kind: String,
    pub probability: f64,
    pub from_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_s: Option<f64>,
}

/// A failure writing the report.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Why a file is not a readable report.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a fhirsurge report (no `schema` member, expected `{SCHEMA}`)")]
    NoSchema { path: String },
    #[error("{path}: not a {SCHEMA} report: its schema is `{found}`")]
    WrongSchema { path: String, found: String },
    #[error("{path}: not a valid {SCHEMA} report: {source}")]
    Invalid {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Just enough of a report to tell whether it is one.
#[derive(Deserialize)]
struct Envelope {
    schema: Option<serde_json::Value>,
}

impl Report {
    /// Writes `report.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        self.write_json(dir).map(drop)
    }

    /// Writes `report.json` and returns the report as read back from those bytes, so
    /// that whatever is rendered next comes from the canonical file exactly.
    fn write_json(&self, dir: &Path) -> Result<Report, WriteError> {
        let path = dir.join("report.json");
        let err = |source| WriteError {
            path: path.display().to_string(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        write_whole(&path, &text).map_err(err)?;
        serde_json::from_slice(&text).map_err(|e| err(e.into()))
    }

    /// Writes `report.json`, then `report.html`, `junit.xml` and `summary.md` rendered
    /// from it.
    pub fn write_all(&self, dir: &Path) -> Result<(), WriteError> {
        self.write_json(dir)?.render_into(dir)
    }

    /// Writes `report.html`, `junit.xml` and `summary.md` into `dir` from this report.
    pub fn render_into(&self, dir: &Path) -> Result<(), WriteError> {
        let texts = [
            html::render(self),
            junit::render(self),
            markdown::render(self),
        ];
        for (name, text) in RENDERED.iter().zip(texts) {
            let path = dir.join(name);
            write_whole(&path, text.as_bytes()).map_err(|source| WriteError {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// Reads a `report.json`, refusing anything that is not `fhirsurge.report/1`.
    pub fn read(path: &Path) -> Result<Report, ReadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
            path: shown.clone(),
            source,
        })?;
        let invalid = |source| ReadError::Invalid {
            path: shown.clone(),
            source,
        };
        let envelope: Envelope = serde_json::from_slice(&bytes).map_err(invalid)?;
        match envelope.schema {
            None => return Err(ReadError::NoSchema { path: shown }),
            Some(serde_json::Value::String(s)) if s == SCHEMA => {}
            Some(other) => {
                let found = other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_owned);
                return Err(ReadError::WrongSchema { path: shown, found });
            }
        }
        serde_json::from_slice(&bytes).map_err(invalid)
    }

    /// The short table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if self.bodies_stored {
            let _ = writeln!(out, "{BODIES_WARNING}");
        }
        let r = &self.run;
        let _ = writeln!(
            out,
            "fhirsurge {} · scenario {} · target {} · profile {} · seed {}",
            r.version, r.scenario, r.target, r.profile, r.seed
        );
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} encounters, {} interactions in {:.1} s ({:.0}/s): {} ok, {} fail, {} info{}",
            s.encounters,
            s.interactions,
            s.load_s,
            s.throughput,
            s.ok,
            s.fail,
            s.info,
            if r.interrupted || self.partial {
                " — INTERRUPTED, partial report"
            } else {
                ""
            }
        );
        if let Some(reason) = &self.partial_reason {
            let _ = writeln!(out, "partial: {reason}");
        }
        let _ = writeln!(
            out,
            "\n{:<34} {:>8} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "operation", "count", "fail", "info", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        let w = &self.workload;
        let rows = self.operations.iter().chain(std::iter::once(&s.all));
        for op in rows.chain(&w.encounter) {
            let l = &op.latency_ms;
            let _ = writeln!(
                out,
                "{:<34} {:>8} {:>6} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                op.op, op.count, op.fail, op.info, l.p50, l.p95, l.p99, l.max
            );
        }
        if let Some(open) = &w.open {
            let _ = writeln!(out, "\n{}", open.line());
        }
        for g in &w.groups {
            let _ = writeln!(out, "{}", g.line());
        }
        if let Some(races) = &w.races {
            let _ = writeln!(out, "{}", races.line());
        }
        for c in w.checks.iter().filter(|c| !c.measured) {
            let _ = writeln!(out, "{}: not measured ({})", c.kind, c.detail);
        }
        if !self.faults.injected.is_empty() {
            let list: Vec<String> = self
                .faults
                .injected
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(out, "\nfaults injected: {}", list.join(", "));
        }
        if let Some(g) = &self.growth {
            for s in &g.slopes {
                let _ = writeln!(out, "growth: {}", s.line);
            }
            if let Some(reason) = &g.reason {
                let _ = writeln!(out, "growth: not measured ({reason})");
            }
        }
        self.mapping_table(&mut out);
        self.findings_table(&mut out);
        self.slo_table(&mut out);
        out
    }

    fn mapping_table(&self, out: &mut String) {
        let m = &self.mapping;
        if !m.is_empty() {
            let _ = writeln!(out, "\nEHR mapping (profile {}):", self.run.profile);
            for d in &m.decisions {
                let _ = writeln!(out, "  {}", d.line());
            }
            for a in &m.adjustments {
                let _ = writeln!(out, "  adjusted: {}", a.line());
            }
        }
        if !m.quirks_observed.is_empty() {
            let quirks: Vec<String> = m.quirks_observed.iter().map(|q| q.line()).collect();
            let _ = writeln!(out, "\nEHR quirks: {}", quirks.join("; "));
        }
    }

    fn slo_table(&self, out: &mut String) {
        if self.slo.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nSLOs:");
        for r in &self.slo {
            let mark = match (r.passed, &r.not_measured) {
                (_, Some(_)) => "n/m ",
                (true, None) => "pass",
                (false, None) => "FAIL",
            };
            let _ = writeln!(out, "  {mark}  {}: {}", r.name, r.detail);
        }
    }

    fn findings_table(&self, out: &mut String) {
        let v = &self.visibility_lag;
        let lag = &v.lag;
        if let (Some(p50), Some(p99), Some(max)) = (lag.p50_ms, lag.p99_ms, lag.max_ms) {
            let _ = writeln!(
                out,
                "\nvisibility lag (create → first seen by a probe search, every {:.0} ms): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {} writes, {} never visible; {} probe searches ({:.1}/s)",
                v.interval_ms.unwrap_or_default(),
                lag.samples,
                lag.never_visible,
                v.probes.requests,
                v.probes.per_second,
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(out, "\nconsistency: 0 findings");
            return;
        }
        let counts: Vec<String> = self
            .finding_counts
            .iter()
            .map(|(k, v)| format!("{} {v}", kind_name(*k)))
            .collect();
        let _ = writeln!(
            out,
            "\nconsistency: {} findings ({})",
            self.findings.len(),
            counts.join(", ")
        );
        for kind in self.finding_counts.keys() {
            for f in self.findings.iter().filter(|f| f.kind == *kind).take(3) {
                let _ = writeln!(
                    out,
                    "  {} {}/{} [{}]: {}",
                    kind_name(f.kind),
                    f.resource_type,
                    f.id.as_deref().unwrap_or("?"),
                    f.identifier.as_deref().unwrap_or("-"),
                    f.detail
                );
            }
        }
    }
}

/// The snake_case name of a finding kind, as in the JSON.
pub fn kind_name(kind: Kind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
