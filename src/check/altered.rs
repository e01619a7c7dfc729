//! A read-back state that holds none of what any write sent (`corrupted_write`), and
//! which write it came from. By version first: a version an acknowledged write reported
//! is that write's. A version no acknowledged write reported was made by something
//! else: when an update that did not end `ok` sent an element value the state shows
//! and no write with other content sent, that update took effect (the value can have
//! come from nowhere else) — `committed_despite_error` as well. Otherwise the state is
//! compared with the write it should show, and the writes whose outcome is unknown that
//! may have made it instead are named: which one it was is unknown.

use super::content::{View, element};
use super::detail::secs;
use super::intern::{NO_SYM, Sym};
use super::state::{Obs, State, Status, UNKNOWN_VERSION, WriteKind};
use super::{Finding, Kind};

/// What the read-back found of a resource, and how.
pub(crate) struct Found<'a> {
    pub r: u32,
    pub obs: &'a Obs,
    pub how: &'static str,
}

impl State {
    /// The state holds none of what any write sent: `corrupted_write` against the write
    /// it came from, and `committed_despite_error` when that is an update that did not
    /// end `ok`.
    pub(crate) fn altered(
        &self,
        found: &Found<'_>,
        writes: &[u32],
        seen: View<'_>,
    ) -> Vec<Finding> {
        let shown = found.obs.version;
        let mut by_version = writes.iter().copied().filter(|&w| {
            let wr = &self.writes[w as usize];
            wr.acked() && shown != NO_SYM && wr.version == shown && self.echoed(w, writes).is_none()
        });
        if let (Some(w), None) = (by_version.next(), by_version.next()) {
            return self.corrupted(found, &[w], &[], seen).into_iter().collect();
        }
        let Some(latest) = self.latest(writes) else {
            return Vec::new();
        };
        let after = self.writes[latest as usize].invoke_us;
        let open = self.writes[latest as usize].outcome != Status::Ok;
        let later: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].outcome != Status::Ok)
            .filter(|&w| open || self.writes[w as usize].invoke_us > after)
            .collect();
        // A version none of the writes that ended `ok` reported (an acknowledged write,
        // or a conditional create answered 200 with the existing match), while each
        // reported its own.
        let attested = || {
            writes
                .iter()
                .map(|&w| &self.writes[w as usize])
                .filter(|w| w.outcome == Status::Ok)
        };
        let unreported = shown != NO_SYM
            && attested().next().is_some()
            && attested().all(|w| w.version != NO_SYM && w.version != shown);
        let ignore = self.ignored(self.res[found.r as usize].rtype);
        let updates: Vec<u32> = later
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].kind == WriteKind::Update)
            .collect();
        if unreported && let Some((group, shared)) = self.shown_by(writes, &updates, seen, ignore) {
            let mut out = vec![self.committed_altered(found, &group, &shared)];
            out.extend(self.corrupted(found, &group, &[], seen));
            return out;
        }
        let unknown: Vec<u32> = later
            .into_iter()
            .filter(|&w| w != latest && self.writes[w as usize].maybe())
            .collect();
        self.corrupted(found, &[latest], &unknown, seen)
            .into_iter()
            .collect()
    }

    fn committed_altered(&self, found: &Found<'_>, group: &[u32], shared: &[Sym]) -> Finding {
        let names: Vec<String> = shared
            .iter()
            .map(|&k| format!("`{}`", self.strings.resolve(k)))
            .collect();
        let detail = format!(
            "the {} took effect: {} at {}{}, a version no acknowledged write reported, shows {} as it sent, and no other write did",
            self.describe_all(group, " or the "),
            found.how,
            secs(found.obs.done_us),
            self.shown_version(found.obs),
            names.join(", "),
        );
        let mut evidence = vec![found.obs.invoke, found.obs.done];
        for &w in group {
            evidence.extend(self.write_evidence(w));
        }
        let kind = Kind::CommittedDespiteError;
        self.finding(kind, self.subject(found.r), detail, evidence)
    }

    /// Among `candidates`, the newest content (by invocation) that sent an element value
    /// the state shows and no write of `writes` with other content sent: every candidate
    /// with that content (a request and its retries), and those elements. A write known
    /// only by its whole digest leaves nothing distinctive.
    fn shown_by(
        &self,
        writes: &[u32],
        candidates: &[u32],
        seen: View<'_>,
        ignore: &[Sym],
    ) -> Option<(Vec<u32>, Vec<Sym>)> {
        let sources: Vec<u32> = writes
            .iter()
            .copied()
            .filter(|&w| !self.writes[w as usize].existing())
            .collect();
        if sources.iter().any(|&w| self.sent(w).is_none()) {
            return None;
        }
        let mut best: Option<(u32, Vec<Sym>)> = None;
        for &w in candidates {
            let sent = self.sent(w)?;
            let others: Vec<View<'_>> = sources
                .iter()
                .filter_map(|&o| self.sent(o))
                .filter(|o| o.digest != sent.digest)
                .collect();
            let shared: Vec<Sym> = sent
                .keys
                .iter()
                .zip(sent.values)
                .filter(|(k, _)| ignore.binary_search(k).is_err())
                .filter(|&(&k, &v)| element(seen, k) == Some(v))
                .filter(|&(&k, &v)| others.iter().all(|o| element(*o, k) != Some(v)))
                .map(|(&k, _)| k)
                .collect();
            let newer = best.as_ref().is_none_or(|(b, _)| {
                self.writes[*b as usize].invoke_us < self.writes[w as usize].invoke_us
            });
            if !shared.is_empty() && newer {
                best = Some((w, shared));
            }
        }
        let (w, shared) = best?;
        let digest = self.contents.digest(self.writes[w as usize].content);
        let group = candidates
            .iter()
            .copied()
            .filter(|&c| self.contents.digest(self.writes[c as usize].content) == digest)
            .collect();
        Some((group, shared))
    }

    /// The read-back read shows the resource without the harness identifier.
    pub(crate) fn without_identifier(&self, found: &Found<'_>, writes: &[u32]) -> Option<Finding> {
        let latest = self.latest(writes)?;
        let ignore = self.ignored(self.res[found.r as usize].rtype);
        let name = self.strings.get("identifier");
        if name.is_some_and(|n| ignore.binary_search(&n).is_ok()) {
            return None;
        }
        let mut evidence = vec![found.obs.invoke, found.obs.done];
        evidence.extend(self.write_evidence(latest));
        let detail = format!(
            "{}; {} at {} shows the resource without the harness identifier (`identifier` missing or changed)",
            self.describe(latest),
            found.how,
            secs(found.obs.done_us),
        );
        Some(self.finding(
            Kind::CorruptedWrite,
            self.subject(found.r),
            detail,
            evidence,
        ))
    }

    /// The resource holds none of what `reference` (one request's attempts) sent: name
    /// what differs; `also` are writes whose outcome is unknown that may have made the
    /// state instead.
    pub(crate) fn corrupted(
        &self,
        found: &Found<'_>,
        reference: &[u32],
        also: &[u32],
        seen: View<'_>,
    ) -> Option<Finding> {
        let sent = self.sent(*reference.first()?)?;
        let ignore = self.ignored(self.res[found.r as usize].rtype);
        let diffs = self.diff_words(sent, seen, ignore);
        let mut evidence = vec![found.obs.invoke, found.obs.done];
        for &w in reference.iter().chain(also) {
            evidence.extend(self.write_evidence(w));
        }
        let unknown = match also {
            [] => String::new(),
            _ => format!(
                " (or the {}, which may have made it: unknown)",
                self.describe_all(also, " or the ")
            ),
        };
        let detail = format!(
            "{}{unknown}; {} at {}{}: {diffs}",
            self.describe_all(reference, " or the "),
            found.how,
            secs(found.obs.done_us),
            self.shown_version(found.obs)
        );
        Some(self.finding(
            Kind::CorruptedWrite,
            self.subject(found.r),
            detail,
            evidence,
        ))
    }

    pub(crate) fn shown_version(&self, obs: &Obs) -> String {
        match obs.version {
            NO_SYM | UNKNOWN_VERSION => String::new(),
            v => format!(" (version {})", self.strings.resolve(v)),
        }
    }
}
