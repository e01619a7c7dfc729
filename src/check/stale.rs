//! Stale reads and reverted resources: a read that began after a newer write was
//! acknowledged, yet shows the state an older write left. Order comes only from real
//! time (an older write completed before the newer one began; the newer one completed
//! before the read began), never from comparing version strings. A load-phase read is
//! judged once the history has moved [`SETTLE_US`] past it, so that a write completion
//! recorded slightly out of order is known by then.

use super::content::{View, holds};
use super::intern::{NO_SYM, Sym};
use super::state::{Draft, LoadRead, State, Status, UNKNOWN_VERSION, WriteKind};
use super::{Finding, Kind};

/// History time a load-phase read waits before it is judged.
const SETTLE_US: u64 = 10_000_000;

/// A resource as one read showed it.
pub(crate) struct Observation<'a> {
    pub version: Sym,
    pub content: Option<View<'a>>,
    pub invoke_us: u64,
    pub done_us: u64,
}

/// What a regression is: the writes whose state the read showed, and the acknowledged
/// write, strictly after all of them, that the read should have shown instead.
#[derive(Clone, Debug)]
pub(crate) struct Regression {
    pub older: Vec<u32>,
    /// The newest of `later`.
    pub newer: u32,
    /// Every acknowledged write strictly after `older` that the read should have shown
    /// instead, oldest acknowledgement first.
    pub later: Vec<u32>,
    /// Identified by a version a write of the resource reported (else by content).
    pub by_version: bool,
}

impl State {
    /// Judges the load-phase reads the history has moved far enough past.
    pub(crate) fn judge_due_reads(&mut self) {
        while self
            .reads
            .front()
            .is_some_and(|r| r.done_us.saturating_add(SETTLE_US) <= self.now_us)
        {
            if let Some(read) = self.reads.pop_front() {
                self.judge_read(read);
            }
        }
    }

    /// Judges every read still waiting (the history has ended).
    pub(crate) fn judge_all_reads(&mut self) {
        while let Some(read) = self.reads.pop_front() {
            self.judge_read(read);
        }
    }

    fn judge_read(&mut self, read: LoadRead) {
        self.stats.reads_checked += 1;
        if read.absent {
            if self.created_before(read.res, read.invoke_us) {
                self.stats.reads_absent_after_create += 1;
            }
            return;
        }
        let obs = Observation {
            version: read.version,
            content: read.content.as_ref().map(|c| c.view()),
            invoke_us: read.invoke_us,
            done_us: read.done_us,
        };
        let Some(reg) = self.regression(read.res, &obs, false) else {
            return;
        };
        self.drafts.push(Draft {
            res: read.res,
            reg,
            shown: read.version,
            invoke_us: read.invoke_us,
            read: [read.invoke, read.done],
        });
    }

    fn created_before(&self, res: u32, t_us: u64) -> bool {
        self.writes_of(res).into_iter().any(|w| {
            let w = &self.writes[w as usize];
            w.kind != WriteKind::Update && w.acked() && w.done_us < t_us
        })
    }

    /// Whether `obs` shows an older state than an acknowledged write completed before it
    /// began. The older state must be attested by a write of it that ended `ok` (a
    /// conditional create answered 200 attests the existing version it reported). The
    /// state is identified by version when the read showed one that a write of this
    /// resource reported, else by content; a version no write of it reported means no
    /// judgment, unless `unknown_by_content` allows falling back to content.
    pub(crate) fn regression(
        &self,
        res: u32,
        obs: &Observation<'_>,
        unknown_by_content: bool,
    ) -> Option<Regression> {
        let writes = self.writes_of(res);
        let by_version = obs.version != NO_SYM
            && writes
                .iter()
                .any(|&w| self.writes[w as usize].version == obs.version);
        if obs.version != NO_SYM && !by_version && !unknown_by_content {
            return None;
        }
        let ignore = self.ignored(self.res[res as usize].rtype);
        let older: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&w| {
                let wr = &self.writes[w as usize];
                if wr.invoke_us >= obs.done_us {
                    return false;
                }
                if by_version {
                    // An update that echoed the version made none.
                    return wr.version == obs.version && self.echoed(w, &writes).is_none();
                }
                match (self.sent(w), obs.content) {
                    (Some(sent), Some(seen)) => holds(sent, seen, ignore),
                    _ => false,
                }
            })
            .collect();
        // Acknowledged, or answered 200 with an existing match: either way the server
        // said the state existed.
        let attested = |w: u32| self.writes[w as usize].outcome == Status::Ok;
        if !older.iter().any(|&w| attested(w)) {
            return None;
        }
        let mut later: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|n| !older.contains(n))
            .filter(|&n| self.strictly_after(n, &older, obs, by_version))
            .collect();
        later.sort_by_key(|&n| (self.writes[n as usize].done_us, n));
        let newer = *later.last()?;
        Some(Regression {
            older,
            newer,
            later,
            by_version,
        })
    }

    /// Whether write `n` was acknowledged before the read began, began after every write
    /// in `older` completed, and (judging by version) sent something else than they did
    /// and than the read shows: a read whose content holds `n`'s is not stale, whatever
    /// its version says.
    fn strictly_after(
        &self,
        n: u32,
        older: &[u32],
        obs: &Observation<'_>,
        by_version: bool,
    ) -> bool {
        let nw = &self.writes[n as usize];
        if !nw.acked() || nw.done_us >= obs.invoke_us {
            return false;
        }
        let ignore = self.ignored(nw.rtype);
        if let (Some(sent), Some(seen)) = (self.sent(n), obs.content)
            && holds(sent, seen, ignore)
        {
            return false;
        }
        let digest = self.contents.digest(nw.content);
        older.iter().all(|&e| {
            let ew = &self.writes[e as usize];
            ew.done_us < nw.invoke_us
                && (!by_version || digest.is_none() || self.contents.digest(ew.content) != digest)
        })
    }

    /// Settles a stale read once every write's fate is known: withheld when a bundle may
    /// explain it; folded into the `lost_write` when every newer write it was judged
    /// against is itself lost (the read showed what the server kept: a symptom, not a
    /// second anomaly); else reported against the newest of them not lost.
    pub(crate) fn settle_draft(&mut self, mut draft: Draft) {
        let s = self.subject(draft.res);
        if self.bundle_touched(s.id, s.identifier) {
            self.stats.withheld_for_bundles += 1;
            return;
        }
        let live: Vec<u32> = draft
            .reg
            .later
            .iter()
            .copied()
            .filter(|w| !self.lost.contains_key(w))
            .collect();
        if let Some(&newer) = live.last() {
            draft.reg.newer = newer;
            draft.reg.later = live;
            let (res, shown, at) = (draft.res, draft.shown, draft.invoke_us);
            let f = self.stale_finding(res, &draft.reg, shown, at, draft.read);
            self.findings.push(f);
            return;
        }
        let Some(&lost) = self.lost.get(&draft.reg.newer) else {
            return;
        };
        let shown = match self.shown(&draft.reg, draft.shown).as_str() {
            "content" => "the older content".to_owned(),
            v => v.to_owned(),
        };
        let clause = format!(
            "; a read at {} already returned {shown}",
            super::detail::secs(draft.invoke_us)
        );
        let f = &mut self.findings[lost];
        f.detail.push_str(&clause);
        f.evidence.extend(draft.read);
        f.evidence.sort_unstable();
        f.evidence.dedup();
    }

    /// What a read showed, in words: "version 1", or "content" when it showed no
    /// version a write reported.
    pub(crate) fn shown(&self, reg: &Regression, version: Sym) -> String {
        match version {
            NO_SYM | UNKNOWN_VERSION => "content".to_owned(),
            v if reg.by_version => format!("version {}", self.strings.resolve(v)),
            v => format!("version {} (content)", self.strings.resolve(v)),
        }
    }

    /// A `stale_read` finding for a read begun at `invoke_us` that showed an older state
    /// (`version`, as the read showed it).
    pub(crate) fn stale_finding(
        &self,
        res: u32,
        reg: &Regression,
        version: Sym,
        invoke_us: u64,
        read: [u64; 2],
    ) -> Finding {
        let shown = self.shown(reg, version);
        let detail = format!(
            "read begun at {} returned {shown}, the state left by the {}; the {} had completed before the read began",
            super::detail::secs(invoke_us),
            self.describe_all(&reg.older, " or the "),
            self.describe(reg.newer),
        );
        let mut evidence = read.to_vec();
        for &w in reg.older.iter().chain([&reg.newer]) {
            evidence.extend(self.write_evidence(w));
        }
        self.finding(Kind::StaleRead, self.subject(res), detail, evidence)
    }
}
