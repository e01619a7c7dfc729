//! Judging every acknowledged write by the version it reported, as the read-back
//! `_history` lists it: a write later overwritten leaves a correct current state, yet
//! the version it made may have been stored stripped or remapped (`corrupted_write`).
//! Versions are matched by equality of the strings the write's completion and the
//! `_history` entry carry, never ordered; a write that reported no version, a version
//! two writes reported, and an entry without content are not judged here. A version
//! `_history` lacks is the read-back's business (`resource`), not this one's.

use super::content::holds;
use super::detail::secs;
use super::intern::{NO_SYM, Sym};
use super::state::{History, State};
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
        let writes: Vec<u32> = self
            .writes_of(r)
            .into_iter()
            .filter(|&w| {
                let wr = &self.writes[w as usize];
                wr.acked() && wr.version != NO_SYM
            })
            .collect();
        let mut out = Vec::new();
        for &w in &writes {
            let version = self.writes[w as usize].version;
            let shared = writes
                .iter()
                .any(|&o| o != w && self.writes[o as usize].version == version);
            if version == skip || shared {
                continue;
            }
            if let Some(f) = self.stored_as(r, w, h) {
                out.push(f);
            }
        }
        out
    }

    /// The finding when the `_history` entry of write `w`'s version does not hold what
    /// `w` sent.
    fn stored_as(&self, r: u32, w: u32, h: &History) -> Option<Finding> {
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
        let detail = format!(
            "{}; read-back _history at {} lists version {} as stored: {diffs}",
            self.describe(w),
            secs(h.done_us),
            self.strings.resolve(wr.version),
        );
        let mut evidence = self.write_evidence(w).to_vec();
        evidence.extend([h.invoke, h.done]);
        Some(self.finding(Kind::CorruptedWrite, self.subject(r), detail, evidence))
    }
}
