//! Updates acknowledged without a new version, and updates a refused retry proves took
//! effect. An update acknowledged 2xx with a version an earlier acknowledged write had
//! already reported (its own `If-Match` version, or any version reported before it
//! began) made no version: it is not that version's maker, and when what it sent
//! differs from what that version holds, the acknowledgement is evidence in itself
//! (an update changing nothing may honestly keep its version). What it made is then
//! judged by its content, never by the version it echoed. Two attempts of one request
//! with the same content are indistinguishable: a finding names every one of them.
//! A retry refused 412 with the same `If-Match` proves the version changed since it was
//! read; when no other write of the resource could have changed it, an earlier attempt
//! whose outcome was unknown took effect, and a read-back that lacks it has lost it.
//! Versions are opaque strings, compared only for equality.

use super::content::holds;
use super::detail::secs;
use super::intern::NO_SYM;
use super::state::{Obs, State, Status, WriteKind};
use super::{Finding, Kind};

impl State {
    /// When update `w` (among `writes`, the resource's) was acknowledged with a version
    /// an earlier write that ended `ok` had already reported, while sending something
    /// that version does not hold: that earlier write (the first to report it).
    pub(crate) fn echoed(&self, w: u32, writes: &[u32]) -> Option<u32> {
        let wr = &self.writes[w as usize];
        if wr.kind != WriteKind::Update || !wr.acked() || wr.version == NO_SYM {
            return None;
        }
        let maker = writes
            .iter()
            .copied()
            .filter(|&e| e != w)
            .filter(|&e| {
                let ew = &self.writes[e as usize];
                ew.outcome == Status::Ok && ew.version == wr.version && ew.done_us <= wr.invoke_us
            })
            .min_by_key(|&e| (self.writes[e as usize].done_us, e))?;
        let sent = self.sent(w)?;
        let kept = self.sent(maker)?;
        (!holds(sent, kept, self.ignored(wr.rtype))).then_some(maker)
    }

    /// Why `w` made no version, in words; empty when it is no echo.
    pub(crate) fn echo_clause(&self, w: u32, writes: &[u32]) -> String {
        let Some(maker) = self.echoed(w, writes) else {
            return String::new();
        };
        let wr = &self.writes[w as usize];
        let version = self.strings.resolve(wr.version);
        if wr.if_match == wr.version {
            format!(
                " (acknowledged with version {version}, the version it was sent with in If-Match: no new version)"
            )
        } else {
            format!(
                " (acknowledged with version {version}, which an earlier acknowledged write reported, the {}: no new version)",
                self.describe(maker)
            )
        }
    }

    /// The attempts of `w`'s request (itself and its retries) that sent the same
    /// content and whose outcome is unknown, with `w`: which one the server acted on is
    /// unknown. Oldest first.
    pub(crate) fn attempts_like(&self, w: u32, writes: &[u32]) -> Vec<u32> {
        let wr = &self.writes[w as usize];
        let digest = self.contents.digest(wr.content);
        let mut out: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&o| {
                let ow = &self.writes[o as usize];
                o == w
                    || (ow.root == wr.root
                        && ow.maybe()
                        && digest.is_some()
                        && self.contents.digest(ow.content) == digest)
            })
            .collect();
        out.sort_by_key(|&o| self.writes[o as usize].invoke);
        out
    }

    /// A `lost_write` when an `If-Match` update whose first attempt ended `info` (or
    /// never completed) had a retry refused 412, no other write could have changed the
    /// version meanwhile, and neither the read-back state `obs` nor `_history` holds
    /// what it sent, nor any version no other write reported.
    pub(crate) fn refused_proof(&self, r: u32, writes: &[u32], obs: &Obs) -> Option<Finding> {
        let h = self.histories.get(self.res[r as usize].history as usize)?;
        let seen = self.contents.view(obs.content)?;
        let ignore = self.ignored(self.res[r as usize].rtype);
        for &x in writes {
            let xw = &self.writes[x as usize];
            let refused = xw.kind == WriteKind::Update
                && xw.outcome == Status::Fail
                && xw.status == 412
                && xw.if_match != NO_SYM
                && xw.root != xw.invoke;
            if !refused {
                continue;
            }
            let Some((first, makers)) = self.proven(x, writes) else {
                continue;
            };
            let Some(sent) = self.sent(first) else {
                continue;
            };
            let reported = |v| writes.iter().any(|&o| self.writes[o as usize].version == v);
            let unexplained = h.entries.iter().any(|&(v, c)| {
                (v != NO_SYM && !reported(v))
                    || self
                        .contents
                        .view(c)
                        .is_some_and(|kept| holds(sent, kept, ignore))
            });
            if holds(sent, seen, ignore) || unexplained {
                continue;
            }
            let detail = format!(
                "the {} took effect: its retry with the same If-Match was refused 412 at {}, so version {} had changed, and no other write could have changed it (the {} came before); read-back at {}{} does not hold what it sent, and _history lists no version it made",
                self.describe(first),
                secs(xw.done_us),
                self.strings.resolve(xw.if_match),
                self.describe_all(&makers, " and the "),
                secs(obs.done_us),
                self.shown_version(obs),
            );
            let mut evidence = vec![obs.invoke, obs.done, h.done];
            for &w in [first, x].iter().chain(&makers) {
                evidence.extend(self.write_evidence(w));
            }
            return Some(self.finding(Kind::LostWrite, self.subject(r), detail, evidence));
        }
        None
    }

    /// For a retry `x` refused 412: the attempt of its request before it whose outcome
    /// is unknown, when every other write of the resource ended `ok` before the request
    /// began and the last of them reported the `If-Match` version; with those writes.
    fn proven(&self, x: u32, writes: &[u32]) -> Option<(u32, Vec<u32>)> {
        let xw = &self.writes[x as usize];
        let attempts: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&o| self.writes[o as usize].root == xw.root)
            .collect();
        let began = attempts
            .iter()
            .map(|&o| self.writes[o as usize].invoke_us)
            .min()?;
        let first = attempts.iter().copied().find(|&o| {
            let ow = &self.writes[o as usize];
            ow.maybe() && ow.invoke_us < xw.invoke_us && ow.if_match == xw.if_match
        })?;
        if attempts.iter().any(|&o| self.writes[o as usize].acked()) {
            return None;
        }
        let mut others: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|o| !attempts.contains(o))
            .collect();
        let settled = others.iter().all(|&o| {
            let ow = &self.writes[o as usize];
            ow.outcome == Status::Ok && ow.done_us < began
        });
        others.sort_by_key(|&o| (self.writes[o as usize].done_us, o));
        let last = *others.last()?;
        (settled && self.writes[last as usize].version == xw.if_match).then_some((first, others))
    }
}
