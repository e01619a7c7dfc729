//! Findings as a hospital engineer reads them: what was written and when, in run-relative
//! seconds, and the history indexes that prove it. Also the end of the check: the order
//! of the findings, their counts and the visibility-lag percentiles.

use crate::history::Outcome as Completion;

use super::content::{Diff, View, differences};
use super::intern::{NO_SYM, Sym};
use super::state::{NEVER, State, Status, WriteKind};
use super::{Finding, Kind, Lag, Outcome};

/// Run-relative time in seconds, to the millisecond.
pub(crate) fn secs(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

/// Whom a finding is about.
#[derive(Clone, Copy)]
pub(crate) struct Subject {
    pub rtype: Sym,
    pub id: Sym,
    pub identifier: Sym,
}

impl State {
    /// The subject of findings about a resource.
    pub(crate) fn subject(&self, res: u32) -> Subject {
        let r = &self.res[res as usize];
        let identifier = match self.idents.get(r.ident as usize) {
            Some(i) => i.identifier,
            None => self
                .writes_of(res)
                .into_iter()
                .map(|w| self.writes[w as usize].identifier)
                .find(|&i| i != NO_SYM)
                .unwrap_or(NO_SYM),
        };
        Subject {
            rtype: r.rtype,
            id: r.id,
            identifier,
        }
    }

    pub(crate) fn finding(
        &self,
        kind: Kind,
        subject: Subject,
        detail: String,
        mut evidence: Vec<u64>,
    ) -> Finding {
        evidence.retain(|&i| i != NEVER);
        evidence.sort_unstable();
        evidence.dedup();
        Finding {
            kind,
            resource_type: self.strings.resolve(subject.rtype).to_owned(),
            id: self.strings.resolve_opt(subject.id),
            identifier: self.strings.resolve_opt(subject.identifier),
            detail,
            evidence,
        }
    }

    /// The invocation and completion indexes of a write.
    pub(crate) fn write_evidence(&self, w: u32) -> [u64; 2] {
        let w = &self.writes[w as usize];
        [w.invoke, w.done]
    }

    /// One write in words: "update acknowledged 200 at 14.200 s (version 2)".
    pub(crate) fn describe(&self, w: u32) -> String {
        let wr = &self.writes[w as usize];
        let what = match wr.kind {
            WriteKind::Create => "create",
            WriteKind::Conditional => "conditional create",
            WriteKind::Update if wr.if_match != NO_SYM => "If-Match update",
            WriteKind::Update => "update",
        };
        let mut facts = Vec::new();
        if wr.id != NO_SYM && wr.kind != WriteKind::Update {
            facts.push(format!("id {}", self.strings.resolve(wr.id)));
        }
        if wr.version != NO_SYM {
            facts.push(format!("version {}", self.strings.resolve(wr.version)));
        }
        let facts = if facts.is_empty() {
            String::new()
        } else {
            format!(" ({})", facts.join(", "))
        };
        let status = match wr.status {
            0 => String::new(),
            s => format!(" {s}"),
        };
        match wr.outcome {
            Status::Ok if wr.existing() => format!(
                "{what} answered 200 (an existing match) at {}{facts}",
                secs(wr.done_us)
            ),
            Status::Ok => format!("{what} acknowledged{status} at {}{facts}", secs(wr.done_us)),
            Status::Fail | Status::Info => {
                let outcome = if wr.outcome == Status::Fail {
                    Completion::Fail
                } else {
                    Completion::Info
                };
                let why = match (wr.status, wr.error) {
                    (0, Some(e)) => format!(" ({})", e.as_str()),
                    (s, Some(e)) => format!(" ({s} {})", e.as_str()),
                    (_, None) => status,
                };
                format!(
                    "{what} that ended {}{why} at {}{facts}",
                    outcome.as_str(),
                    secs(wr.done_us)
                )
            }
            Status::Pending => {
                format!("{what} sent at {} that never completed", secs(wr.invoke_us))
            }
        }
    }

    /// How what came back differs from what was sent: "`period` missing, `status`
    /// changed".
    pub(crate) fn diff_words(&self, sent: View<'_>, seen: View<'_>, ignore: &[Sym]) -> String {
        let diffs: Vec<String> = differences(sent, seen, ignore)
            .map(|d| match d {
                Diff::Missing(k) => format!("`{}` missing", self.strings.resolve(k)),
                Diff::Changed(k) => format!("`{}` changed", self.strings.resolve(k)),
            })
            .collect();
        if diffs.is_empty() {
            "content differs".to_owned()
        } else {
            diffs.join(", ")
        }
    }

    /// Several writes in words, oldest first, joined with `joiner` (" or the ").
    pub(crate) fn describe_all(&self, writes: &[u32], joiner: &str) -> String {
        let mut sorted = writes.to_vec();
        sorted.sort_by_key(|&w| self.writes[w as usize].invoke);
        let parts: Vec<String> = sorted.iter().map(|&w| self.describe(w)).collect();
        parts.join(joiner)
    }

    /// Ends the check: judges what waited for the read-back, orders the findings.
    pub(crate) fn finish(mut self) -> Outcome {
        self.judge_all_reads();
        self.settle_pending();
        for i in 0..self.idents.len() as u32 {
            self.judge_ident(i);
        }
        for r in 0..self.res.len() as u32 {
            self.judge_resource(r);
            self.judge_lost_updates(r);
        }
        for draft in std::mem::take(&mut self.drafts) {
            self.settle_draft(draft);
        }
        self.judge_transactions();
        let mut findings = std::mem::take(&mut self.findings);
        findings.sort_by(|a, b| {
            (a.evidence.first(), a.kind, &a.identifier).cmp(&(
                b.evidence.first(),
                b.kind,
                &b.identifier,
            ))
        });
        let mut counts = std::collections::BTreeMap::new();
        for f in &findings {
            *counts.entry(f.kind).or_insert(0) += 1;
        }
        Outcome {
            findings,
            counts,
            visibility_lag: lag(std::mem::take(&mut self.lag_us), self.never_visible),
            stats: self.stats,
            notifications: None,
        }
    }

    /// Counts write outcomes; what the history never completed counts as `info`.
    fn settle_pending(&mut self) {
        self.stats.incomplete = self.pending.len() as u64;
        let bundles: Vec<(Sym, Sym)> = self
            .pending
            .values()
            .filter_map(|p| match p {
                super::state::Pending::Bundle { identifier, id } => Some((*identifier, *id)),
                _ => None,
            })
            .collect();
        for (identifier, id) in bundles {
            self.touch_bundle(identifier, id);
        }
        let unfinished: Vec<u32> = self
            .pending
            .values()
            .filter_map(|p| match p {
                super::state::Pending::Write(w) => Some(*w),
                _ => None,
            })
            .collect();
        for w in unfinished {
            self.add_orphan(w);
        }
        self.pending.clear();
        for w in &self.writes {
            match w.outcome {
                Status::Ok if w.existing() => {
                    self.stats.writes_ok += 1;
                    self.stats.conditional_existing += 1;
                }
                Status::Ok => self.stats.writes_ok += 1,
                Status::Fail => self.stats.writes_fail += 1,
                Status::Info | Status::Pending => self.stats.writes_info += 1,
            }
        }
    }
}

/// Percentiles (nearest rank) of the lag samples, in milliseconds.
fn lag(mut samples: Vec<u64>, never_visible: u64) -> Lag {
    samples.sort_unstable();
    let rank = |p: f64| -> Option<f64> {
        let n = samples.len();
        if n == 0 {
            return None;
        }
        let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        Some(samples[i] as f64 / 1000.0)
    };
    Lag {
        samples: samples.len() as u64,
        p50_ms: rank(0.50),
        p90_ms: rank(0.90),
        p99_ms: rank(0.99),
        max_ms: samples.last().map(|&m| m as f64 / 1000.0),
        never_visible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_by_nearest_rank() {
        let l = lag((1..=100).map(|i| i * 1000).collect(), 3);
        assert_eq!(l.samples, 100);
        assert_eq!(l.p50_ms, Some(50.0));
        assert_eq!(l.p99_ms, Some(99.0));
        assert_eq!(l.max_ms, Some(100.0));
        assert_eq!(l.never_visible, 3);
        assert_eq!(l.p90_ms, Some(90.0));
        assert_eq!(lag(Vec::new(), 0).p50_ms, None);
        assert_eq!(secs(12_345_678), "12.346 s");
    }
}
