//! Judging every acknowledged write by the version it reported, as the read-back
//! `_history` lists it: a write later overwritten leaves a correct current state, yet
//! the version it made may have been stored stripped or remapped (`corrupted_write`).
//! Versions are matched by equality of the strings the write's completion and the
//! `_history` entry carry, never ordered; a write that reported no version, a version
//! two writes reported, and an entry without content are not judged here. A
//! conditional create answered 200 with the existing match stands for the create it
//! matched when every create of the resource sent the same content (a retry after an
//! unknown outcome: the first attempt's version is known only from it). A version
//! `_history` lacks is the read-back's business (`resource`), not this one's.

use super::content::holds;
use super::detail::secs;
use super::intern::{NO_SYM, Sym};
use super::state::{History, State, WriteKind};
use super::{Finding, Kind};

impl State {
    /// `corrupted_write` findings for the acknowledged writes of resource `r` whose
    /// version `_history` lists with other content than they sent; `skip` is a version
    /// already reported.
    pub(crate) fn judge_versions(&self, r: u32, skip: Sym) -> Vec<Finding> {
        let Some(h) = self.histories.get(self.res[r as usize].history as usize) else {
            return Vec::new();
        };
        let s = self.subject(r);
        if self.bundle_touched(s.id, s.identifier) {
            return Vec::new();
        }
        let all = self.writes_of(r);
        let writes: Vec<u32> = all
            .iter()
            .copied()
            .filter(|&w| {
                let wr = &self.writes[w as usize];
                wr.acked() && wr.version != NO_SYM && self.echoed(w, &all).is_none()
            })
            .collect();
        let mut judged: Vec<Sym> = Vec::new();
        let mut out = Vec::new();
        for &w in &writes {
            let version = self.writes[w as usize].version;
            let shared = writes
                .iter()
                .any(|&o| o != w && self.writes[o as usize].version == version);
            if shared {
                judged.push(version);
            }
            if version == skip || shared {
                continue;
            }
            judged.push(version);
            out.extend(self.stored_as(r, w, &[], h));
        }
        let (attesting, makers) = self.attesting(&all);
        for w in attesting {
            let version = self.writes[w as usize].version;
            if version != skip && !judged.contains(&version) {
                judged.push(version);
                out.extend(self.stored_as(r, w, &makers, h));
            }
        }
        out
    }

    /// Conditional creates answered 200 with the existing match before any update of the
    /// resource began, when every create that may have made it sent the same content:
    /// the version they reported is what that content became.
    /// Returns them, and the creates that may have made what they matched.
    fn attesting(&self, writes: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let creates: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].kind != WriteKind::Update)
            .collect();
        let digests: Vec<Option<u64>> = creates
            .iter()
            .map(|&w| self.contents.digest(self.writes[w as usize].content))
            .collect();
        let made = creates.iter().any(|&w| !self.writes[w as usize].existing());
        if !made || digests.iter().any(|d| d.is_none() || *d != digests[0]) {
            return (Vec::new(), Vec::new());
        }
        // An update begun before the answer may have made the version it reported.
        let first_update = writes
            .iter()
            .map(|&w| &self.writes[w as usize])
            .filter(|w| w.kind == WriteKind::Update)
            .map(|w| w.invoke_us)
            .min()
            .unwrap_or(u64::MAX);
        let (attesting, mut makers): (Vec<u32>, Vec<u32>) = creates.into_iter().partition(|&w| {
            let wr = &self.writes[w as usize];
            wr.existing() && wr.version != NO_SYM && wr.done_us < first_update
        });
        makers.retain(|&w| !self.writes[w as usize].existing());
        (attesting, makers)
    }

    /// The finding when the `_history` entry of write `w`'s version does not hold what
    /// `w` sent; `makers` made that version when `w` only reported it.
    fn stored_as(&self, r: u32, w: u32, makers: &[u32], h: &History) -> Option<Finding> {
        let wr = &self.writes[w as usize];
        let sent = self.sent(w)?;
        let ignore = self.ignored(wr.rtype);
        let mut entries = h.entries.iter().filter(|e| e.0 == wr.version).peekable();
        entries.peek()?;
        let mut seen = None;
        for &(_, c) in entries {
            let view = self.contents.view(c)?;
            if holds(sent, view, ignore) {
                return None;
            }
            seen.get_or_insert(view);
        }
        let seen = seen?;
        let diffs = self.diff_words(sent, seen, ignore);
        let version = self.strings.resolve(wr.version);
        let who = match makers {
            [] => self.describe(w),
            _ => format!(
                "{}, whose version {version} the {} reported",
                self.describe_all(makers, " or the "),
                self.describe(w)
            ),
        };
        let detail = format!(
            "{who}; read-back _history at {} lists version {version} as stored: {diffs}",
            secs(h.done_us),
        );
        let mut evidence = self.write_evidence(w).to_vec();
        for &m in makers {
            evidence.extend(self.write_evidence(m));
        }
        evidence.extend([h.invoke, h.done]);
        Some(self.finding(Kind::CorruptedWrite, self.subject(r), detail, evidence))
    }
}
