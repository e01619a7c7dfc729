//! Judging one resource once the history has ended, by what the read-back showed of it:
//! reverted to an older write (`lost_write` when `_history` lacks the acknowledged
//! version, else `stale_read`), holding an update that ended `fail` or `info`
//! (`committed_despite_error`), or holding none of what was written
//! (`corrupted_write`); then every acknowledged version by `_history` (`versions`).
//! Also two acknowledged `If-Match` updates of one version (`lost_update`). The writes a
//! `lost_write` names are remembered, so that a stale read they explain is folded into it.

use super::altered::Found;
use super::content::holds;
use super::detail::secs;
use super::intern::{NO_SYM, Sym};
use super::stale::{Observation, Regression};
use super::state::{NIL, Obs, Probe, State, UNKNOWN_VERSION, WriteKind};
use super::{Finding, Kind};

/// How a resource's judgment counts.
enum Tally {
    /// Nothing of ours to judge.
    Skip,
    Judged,
    Unverified,
    Withheld,
}

/// What the judgment of a resource's read-back state gave.
struct Verdict {
    tally: Tally,
    findings: Vec<Finding>,
    /// For a `lost_write`: every write it judged lost.
    lost: Vec<u32>,
    /// The version the read-back showed.
    shown: Sym,
}

impl Verdict {
    fn bare(tally: Tally) -> Verdict {
        Verdict {
            tally,
            findings: Vec::new(),
            lost: Vec::new(),
            shown: NO_SYM,
        }
    }
}

impl State {
    pub(crate) fn judge_resource(&mut self, r: u32) {
        let verdict = self.resource_verdict(r);
        match verdict.tally {
            Tally::Skip => {}
            Tally::Judged => self.stats.resources_read_back += 1,
            Tally::Unverified => self.stats.resources_unverified += 1,
            Tally::Withheld => {
                self.stats.withheld_for_bundles += 1;
                return;
            }
        }
        // A version the read-back already showed corrupted is not reported twice.
        let corrupted = verdict
            .findings
            .iter()
            .any(|f| f.kind == Kind::CorruptedWrite);
        let skip = if corrupted { verdict.shown } else { NO_SYM };
        let versions = self.judge_versions(r, skip);
        for f in verdict.findings {
            if f.kind == Kind::LostWrite {
                for &w in &verdict.lost {
                    self.lost.insert(w, self.findings.len());
                }
            }
            self.findings.push(f);
        }
        self.findings.extend(versions);
    }

    fn resource_verdict(&self, r: u32) -> Verdict {
        let res = &self.res[r as usize];
        let writes = self.writes_of(r);
        let acked = writes.iter().any(|&w| self.writes[w as usize].acked());
        let (obs, by_read) = match (res.read.probe, res.found.probe) {
            (Probe::Present, _) => (res.read, true),
            (Probe::Absent, _) => return Verdict::bare(Tally::Skip),
            (_, Probe::Present) => (res.found, false),
            _ if acked => return Verdict::bare(Tally::Unverified),
            _ => return Verdict::bare(Tally::Skip),
        };
        if writes.is_empty() {
            return Verdict::bare(Tally::Skip);
        }
        let s = self.subject(r);
        if self.bundle_touched(s.id, s.identifier) {
            return Verdict::bare(Tally::Withheld);
        }
        let observation = Observation {
            version: obs.version,
            content: self.contents.view(obs.content),
            invoke_us: obs.invoke_us,
            done_us: obs.done_us,
        };
        let mut verdict = Verdict {
            shown: obs.version,
            ..Verdict::bare(Tally::Judged)
        };
        if by_read && let Some(reg) = self.regression(r, &observation, true) {
            let (finding, lost) = self.reverted(r, &reg, &obs);
            verdict.findings.extend(finding);
            verdict.lost = lost;
            return verdict;
        }
        if let Some(f) = self.refused_proof(r, &writes, &obs) {
            verdict.findings.push(f);
            return verdict;
        }
        verdict.findings = self.held(r, &writes, &obs, by_read);
        verdict
    }

    /// The read-back read showed an older state than an acknowledged write: lost when
    /// `_history` lacks what the newer write made (with every later write it lacks),
    /// else a stale read.
    fn reverted(&self, r: u32, reg: &Regression, read: &Obs) -> (Option<Finding>, Vec<u32>) {
        match self.history_lacks(r, reg.newer) {
            Some((true, history_done)) => {
                let writes = self.writes_of(r);
                let newer = &self.writes[reg.newer as usize];
                let echo = self.echo_clause(reg.newer, &writes);
                let what = match newer.version {
                    NO_SYM => "its content".to_owned(),
                    _ if !echo.is_empty() => "what it sent".to_owned(),
                    v => format!("version {}", self.strings.resolve(v)),
                };
                let attempts = self.attempts_like(reg.newer, &writes);
                let who = match attempts.as_slice() {
                    [_] => self.describe(reg.newer),
                    _ => format!(
                        "the same update sent {} times, one of which the server dropped (which is unknown): the {}",
                        attempts.len(),
                        self.describe_all(&attempts, " or the ")
                    ),
                };
                let shown = match read.version {
                    NO_SYM | UNKNOWN_VERSION => "the content".to_owned(),
                    v => format!("version {}", self.strings.resolve(v)),
                };
                let detail = format!(
                    "{who}{echo}; read-back read at {} shows {shown} of the {}, and _history lacks {what}",
                    secs(read.done_us),
                    self.describe_all(&reg.older, " or the "),
                );
                let mut evidence = vec![read.invoke, read.done, history_done];
                for &w in reg.older.iter().chain(&attempts) {
                    evidence.extend(self.write_evidence(w));
                }
                let lost = reg
                    .later
                    .iter()
                    .copied()
                    .filter(|&w| self.history_lacks(r, w).is_some_and(|(lacks, _)| lacks))
                    .collect();
                let f = self.finding(Kind::LostWrite, self.subject(r), detail, evidence);
                (Some(f), lost)
            }
            _ if read.version != NO_SYM && !reg.by_version => (None, Vec::new()),
            _ => {
                let read_at = [read.invoke, read.done];
                let f = self.stale_finding(r, reg, read.version, read.invoke_us, read_at);
                (Some(f), Vec::new())
            }
        }
    }

    /// Whether the read-back `_history` lacks what a write made (its version, or its
    /// content when it reported none), with the history's completion index; `None`
    /// when no `_history` was read.
    fn history_lacks(&self, r: u32, w: u32) -> Option<(bool, u64)> {
        let h = self.histories.get(self.res[r as usize].history as usize)?;
        let wr = &self.writes[w as usize];
        // An update that echoed an earlier version is judged by what it sent.
        let has = if wr.version != NO_SYM && self.echoed(w, &self.writes_of(r)).is_none() {
            h.entries.iter().any(|&(v, _)| v == wr.version)
        } else {
            let sent = self.sent(w)?;
            let ignore = self.ignored(wr.rtype);
            h.entries.iter().any(|&(_, c)| {
                self.contents
                    .view(c)
                    .is_some_and(|seen| holds(sent, seen, ignore))
            })
        };
        Some((!has, h.done))
    }

    /// What the read-back found is not older than the acknowledged writes: does it hold
    /// the last acknowledged one, one whose outcome was unknown or that failed (an update
    /// that took effect), or none of them (corrupted, `altered`)?
    fn held(&self, r: u32, writes: &[u32], obs: &Obs, by_read: bool) -> Vec<Finding> {
        let found = Found {
            r,
            obs,
            how: if by_read {
                "read-back read"
            } else {
                "read-back search"
            },
        };
        let ignore = self.ignored(self.res[r as usize].rtype);
        let Some(seen) = self.contents.view(obs.content) else {
            if !by_read {
                return Vec::new();
            }
            return self
                .without_identifier(&found, writes)
                .into_iter()
                .collect();
        };
        let matching: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&w| !self.writes[w as usize].existing())
            .filter(|&w| self.sent(w).is_some_and(|s| holds(s, seen, ignore)))
            .collect();
        let last = self.last_acked(writes);
        if matching.iter().any(|w| last.contains(w)) {
            return Vec::new();
        }
        if matching.is_empty() {
            return self.altered(&found, writes, seen);
        }
        let acked_matches = matching.iter().any(|&w| self.writes[w as usize].acked());
        let unacked: Vec<u32> = matching
            .into_iter()
            .filter(|&w| !self.writes[w as usize].acked())
            .collect();
        if unacked.is_empty() {
            let latest = self.latest(writes);
            return latest
                .and_then(|l| self.corrupted(&found, &[l], &[], seen))
                .into_iter()
                .collect();
        }
        // A write whose outcome was unknown, or that failed, made it.
        let updates: Vec<u32> = unacked
            .into_iter()
            .filter(|&w| self.writes[w as usize].kind == WriteKind::Update)
            .collect();
        if updates.is_empty() || acked_matches {
            return Vec::new(); // a create is judged with its identifier
        }
        let mut evidence = vec![obs.invoke, obs.done];
        for &u in &updates {
            evidence.extend(self.write_evidence(u));
        }
        let detail = format!(
            "the {} took effect: {} at {} shows what it sent{}",
            self.describe_all(&updates, " or the "),
            found.how,
            secs(obs.done_us),
            self.shown_version(obs)
        );
        let kind = Kind::CommittedDespiteError;
        vec![self.finding(kind, self.subject(r), detail, evidence)]
    }

    /// The acknowledged writes no other acknowledged write began after: what the
    /// resource may show (with any write whose outcome is unknown).
    fn last_acked(&self, writes: &[u32]) -> Vec<u32> {
        let acked: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].acked())
            .collect();
        let mut top = [(0u64, NIL), (0u64, NIL)];
        for &w in &acked {
            let t = self.writes[w as usize].invoke_us;
            if t >= top[0].0 {
                top = [(t, w), top[0]];
            } else if t >= top[1].0 {
                top[1] = (t, w);
            }
        }
        acked
            .into_iter()
            .filter(|&w| {
                let later = if top[0].1 == w { top[1] } else { top[0] };
                later.1 == NIL || later.0 <= self.writes[w as usize].done_us
            })
            .collect()
    }

    /// The write a resource should show: the last acknowledged one, or failing any, the
    /// last whose outcome is unknown.
    pub(crate) fn latest(&self, writes: &[u32]) -> Option<u32> {
        let last_acked = writes
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].acked())
            .max_by_key(|&w| self.writes[w as usize].done_us);
        last_acked.or_else(|| {
            writes
                .iter()
                .copied()
                .filter(|&w| self.writes[w as usize].maybe())
                .max_by_key(|&w| self.writes[w as usize].invoke_us)
        })
    }

    /// Two or more `If-Match` updates of the same version, with different content, all
    /// acknowledged: at most one may succeed.
    pub(crate) fn judge_lost_updates(&mut self, r: u32) {
        let mut ups: Vec<u32> = Vec::new();
        let mut w = self.res[r as usize].first_write;
        while w != NIL {
            let wr = &self.writes[w as usize];
            if wr.kind == WriteKind::Update
                && wr.acked()
                && wr.if_match != NO_SYM
                && wr.version != wr.if_match
            {
                ups.push(w);
            }
            w = wr.next_res;
        }
        if ups.len() < 2 {
            return;
        }
        ups.sort_by_key(|&w| {
            (
                self.writes[w as usize].if_match,
                self.writes[w as usize].invoke,
            )
        });
        for group in ups
            .chunk_by(|&a, &b| self.writes[a as usize].if_match == self.writes[b as usize].if_match)
        {
            let mut digests: Vec<Option<u64>> = group
                .iter()
                .map(|&w| self.contents.digest(self.writes[w as usize].content))
                .collect();
            digests.sort_unstable();
            digests.dedup();
            if digests.len() < 2 {
                continue;
            }
            let version = self
                .strings
                .resolve(self.writes[group[0] as usize].if_match);
            let detail = format!(
                "{} updates sent with If-Match W/\"{version}\" were all acknowledged: the {}; at most one can apply to version {version}, the others must be refused (412 or 409), so one overwrote the other",
                group.len(),
                self.describe_all(group, ", and the "),
            );
            let evidence = group.iter().flat_map(|&w| self.write_evidence(w)).collect();
            let f = self.finding(Kind::LostUpdate, self.subject(r), detail, evidence);
            self.findings.push(f);
        }
    }
}
