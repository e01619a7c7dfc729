//! Judging one harness identifier once the history has ended: were its acknowledged
//! creates found at read-back (else `lost_write`), did more resources come to carry it
//! than the harness wrote (`duplicate_write`), did a create that ended `fail` or `info`
//! take effect anyway (`committed_despite_error`)? Also each acknowledged create's
//! visibility lag.

use super::Kind;
use super::detail::secs;
use super::intern::NO_SYM;
use super::state::{NEVER, Probe, SeenId, State, WriteKind};

/// What the read-back said of one acknowledged create.
enum Verdict {
    Present,
    Lost,
    Unverified,
}

impl State {
    pub(crate) fn judge_ident(&mut self, i: u32) {
        let attempts = self.attempts(i);
        if attempts.is_empty() {
            return;
        }
        self.stats.identifiers += 1;
        let created: Vec<u32> = attempts
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].acked())
            .collect();
        self.record_lag(i, &created);
        let seen = self.seen_ids(i);
        if self.ident_touched(i, &attempts, &seen) {
            self.stats.withheld_for_bundles += 1;
            return;
        }
        let duplicate = self.judge_duplicate(i, &attempts, &seen);
        let present: Vec<SeenId> = seen.into_iter().filter(|s| s.readback).collect();
        let mut unverified = false;
        let mut shown = None;
        for &c in &created {
            match self.verdict(i, c, &present) {
                Verdict::Present => {
                    shown.get_or_insert(c);
                    if self.entry_of.contains_key(&c) {
                        self.applied.insert(c);
                    }
                }
                Verdict::Lost => self.lost_create(i, c, &present),
                Verdict::Unverified => unverified = true,
            }
        }
        // Resources carrying the identifier that no acknowledged create reported: an
        // attempt that did not end `ok` made them (unless an acknowledged create that
        // reported no id may have).
        let orphan_acked = created
            .iter()
            .any(|&c| self.writes[c as usize].id == NO_SYM);
        let unreported: Vec<SeenId> = present
            .iter()
            .copied()
            .filter(|s| !created.iter().any(|&c| self.writes[c as usize].id == s.id))
            .collect();
        if !duplicate && !orphan_acked && !unreported.is_empty() {
            self.committed_create(i, &attempts, &unreported);
        }
        if let Some(c) = shown {
            self.judge_visible(i, c, &present);
        }
        let searched = self.idents[i as usize].search.probe == Probe::Present;
        if unverified || (created.is_empty() && !searched && present.is_empty()) {
            self.stats.identifiers_unverified += 1;
        } else {
            self.stats.identifiers_verified += 1;
        }
    }

    fn ident_touched(&self, i: u32, attempts: &[u32], seen: &[SeenId]) -> bool {
        let identifier = self.idents[i as usize].identifier;
        self.bundle_touched(NO_SYM, identifier)
            || attempts
                .iter()
                .any(|&w| self.bundle_touched(self.writes[w as usize].id, NO_SYM))
            || seen.iter().any(|s| self.bundle_touched(s.id, NO_SYM))
    }

    /// An acknowledged create is present when its id was read back, or seen by a
    /// read-back search; one that reported no id, when anything carries its identifier.
    /// One answered 201 with an id that read-back shows nowhere (404 by id, absent from
    /// the search by identifier) is lost, whatever else carries the identifier: the
    /// resource the server said it created does not exist.
    fn verdict(&self, i: u32, c: u32, present: &[SeenId]) -> Verdict {
        let ident = &self.idents[i as usize];
        let wr = &self.writes[c as usize];
        let id = wr.id;
        let read = self
            .res_of
            .get(&(ident.rtype, id))
            .map(|&r| self.res[r as usize].read.probe);
        let created_201 = id != NO_SYM && wr.status == 201;
        let shown = if created_201 {
            present.iter().any(|s| s.id == id)
        } else {
            !present.is_empty()
        };
        if shown || read == Some(Probe::Present) {
            return Verdict::Present;
        }
        let id_absent = id == NO_SYM || read == Some(Probe::Absent);
        if ident.search.probe == Probe::Present && id_absent {
            Verdict::Lost
        } else {
            Verdict::Unverified
        }
    }

    fn lost_create(&mut self, i: u32, c: u32, present: &[SeenId]) {
        let ident = &self.idents[i as usize];
        let (rtype, identifier) = (ident.rtype, ident.identifier);
        let search = ident.search;
        let wr = &self.writes[c as usize];
        let id = wr.id;
        let mut evidence = self.write_evidence(c).to_vec();
        evidence.extend([search.invoke, search.done]);
        let mut by_id = String::from("no id had been reported");
        let mut updates = Vec::new();
        if let Some(&r) = self.res_of.get(&(rtype, id)) {
            let read = self.res[r as usize].read;
            by_id = format!("404 by id at {}", secs(read.done_us));
            evidence.extend([read.invoke, read.done]);
            updates = self
                .writes_of(r)
                .into_iter()
                .filter(|&w| {
                    let w = &self.writes[w as usize];
                    w.kind == WriteKind::Update && w.acked()
                })
                .collect();
        }
        for &u in &updates {
            evidence.extend(self.write_evidence(u));
        }
        let also = match updates.len() {
            0 => String::new(),
            n => format!("; {n} acknowledged update(s) of it are gone with it"),
        };
        let matches = match present {
            [] => "0 matches".to_owned(),
            _ => {
                let ids: Vec<&str> = present.iter().map(|s| self.strings.resolve(s.id)).collect();
                format!("only id {} carrying it", ids.join(", "))
            }
        };
        let detail = format!(
            "{}; read-back: {by_id}, and {matches} searching by identifier at {}{also}",
            self.describe(c),
            secs(search.done_us),
        );
        let subject = super::detail::Subject {
            rtype,
            id,
            identifier,
        };
        let f = self.finding(Kind::LostWrite, subject, detail, evidence);
        for w in std::iter::once(c).chain(updates) {
            self.lost.insert(w, self.findings.len());
        }
        self.findings.push(f);
    }

    /// More distinct resources carry the identifier than the harness's creates could
    /// have made: one per plain-create request, one for any number of conditional ones.
    fn judge_duplicate(&mut self, i: u32, attempts: &[u32], seen: &[SeenId]) -> bool {
        if seen.len() < 2 {
            return false;
        }
        let roots = |kind: WriteKind| {
            let mut r: Vec<u64> = attempts
                .iter()
                .map(|&w| &self.writes[w as usize])
                .filter(|w| w.kind == kind)
                .map(|w| w.root)
                .collect();
            r.sort_unstable();
            r.dedup();
            r.len()
        };
        let plain = roots(WriteKind::Create);
        let allowed = plain + roots(WriteKind::Conditional).min(1);
        if seen.len() <= allowed {
            return false;
        }
        let cause = self.duplicate_cause(attempts, plain);
        let ident = &self.idents[i as usize];
        let ids: Vec<&str> = seen.iter().map(|s| self.strings.resolve(s.id)).collect();
        let detail = format!(
            "{} resources carry the identifier (ids {}), written by {} create request(s): the {}; {cause}",
            seen.len(),
            ids.join(", "),
            allowed.max(1),
            self.describe_all(attempts, "; the "),
        );
        let mut evidence: Vec<u64> = attempts
            .iter()
            .flat_map(|&w| self.write_evidence(w))
            .collect();
        evidence.extend(seen.iter().map(|s| s.at));
        evidence.extend([ident.search.invoke, ident.search.done]);
        let extra = seen
            .iter()
            .find(|s| {
                !attempts.iter().any(|&w| {
                    let w = &self.writes[w as usize];
                    w.acked() && w.id == s.id
                })
            })
            .map_or(NO_SYM, |s| s.id);
        let subject = super::detail::Subject {
            rtype: ident.rtype,
            id: extra,
            identifier: ident.identifier,
        };
        let f = self.finding(Kind::DuplicateWrite, subject, detail, evidence);
        self.findings.push(f);
        true
    }

    fn duplicate_cause(&self, attempts: &[u32], plain: usize) -> &'static str {
        // A plain create re-sent after an attempt of the same request ended unknown.
        let mut chains: Vec<(u64, u64, bool)> = attempts
            .iter()
            .map(|&a| &self.writes[a as usize])
            .filter(|a| a.kind == WriteKind::Create)
            .map(|a| (a.root, a.invoke, a.maybe()))
            .collect();
        chains.sort_unstable();
        let mut resent_after_unknown = false;
        let mut unknown_before = false;
        for (i, &(root, _, maybe)) in chains.iter().enumerate() {
            if i == 0 || chains[i - 1].0 != root {
                unknown_before = false;
            } else if unknown_before {
                resent_after_unknown = true;
            }
            unknown_before |= maybe;
        }
        if resent_after_unknown {
            "client-caused: a plain create (POST without If-None-Exist) was re-sent after an unknown outcome and both took effect; send If-None-Exist or look up by identifier before re-sending"
        } else if plain == 0 {
            "server-caused: only conditional creates (If-None-Exist) were involved, and the server did not serialize them"
        } else {
            "server-caused: no create was re-sent after an unknown outcome, yet the server made more resources than requests"
        }
    }

    /// No acknowledged attempt created anything, yet the identifier is there.
    fn committed_create(&mut self, i: u32, attempts: &[u32], present: &[SeenId]) {
        let failed: Vec<u32> = attempts
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].outcome != super::state::Status::Ok)
            .collect();
        if failed.is_empty() {
            return;
        }
        let existing: Vec<u32> = attempts
            .iter()
            .copied()
            .filter(|&w| self.writes[w as usize].existing())
            .collect();
        let ident = &self.idents[i as usize];
        let ids: Vec<&str> = present.iter().map(|s| self.strings.resolve(s.id)).collect();
        let retry = if existing.is_empty() {
            String::new()
        } else {
            format!(
                "; the retry, a {}, shows the earlier attempt had committed",
                self.describe_all(&existing, ", then a ")
            )
        };
        let when = match ident.search.probe {
            Probe::Present => format!(" at {}", secs(ident.search.done_us)),
            _ => String::new(),
        };
        let detail = format!(
            "the {} took effect: read-back{when} found id {} carrying the identifier{retry}",
            self.describe_all(&failed, " or the "),
            ids.join(", "),
        );
        let mut evidence: Vec<u64> = failed
            .iter()
            .chain(&existing)
            .flat_map(|&w| self.write_evidence(w))
            .collect();
        evidence.extend(present.iter().map(|s| s.at));
        evidence.extend([ident.search.invoke, ident.search.done]);
        let subject = super::detail::Subject {
            rtype: ident.rtype,
            id: present[0].id,
            identifier: ident.identifier,
        };
        let f = self.finding(Kind::CommittedDespiteError, subject, detail, evidence);
        self.findings.push(f);
    }

    /// Lag from each probed acknowledged create to the first search before the
    /// read-back that showed it. A create no probe looked for is no sample.
    fn record_lag(&mut self, i: u32, created: &[u32]) {
        let ident = &self.idents[i as usize];
        if ident.probes == 0 {
            return;
        }
        for &c in created {
            let w = &self.writes[c as usize];
            if ident.load_seen_us == NEVER {
                self.never_visible += 1;
            } else {
                self.lag_us
                    .push(ident.load_seen_us.saturating_sub(w.done_us));
            }
        }
    }

    /// An acknowledged create found at read-back that searches did not show: the probes
    /// looked for it until the read-back and never saw it, or it was read back by id and
    /// no search (the read-back's included) ever showed it. Not for a type the profile
    /// declares may be kept out of searches (a holding area), nor for one read back
    /// without its identifier (that is a corrupted write: no search by it could work).
    fn judge_visible(&mut self, i: u32, c: u32, present: &[SeenId]) {
        let ident = &self.idents[i as usize];
        let id = self.writes[c as usize].id;
        let carries = present.iter().any(|s| s.id == id);
        if self.held.contains(&ident.rtype) || !carries {
            return;
        }
        let probed_unseen = ident.probes > 0 && ident.load_seen_us == NEVER;
        let search_ok = ident.search.probe == Probe::Present;
        let never = ident.first_seen_us == NEVER && search_ok;
        if !probed_unseen && !never {
            return;
        }
        let mut evidence = self.write_evidence(c).to_vec();
        let mut said = Vec::new();
        if ident.probes > 0 {
            evidence.extend([ident.last_probe.0, ident.last_probe.1]);
            said.push(format!(
                "{} visibility probes by identifier showed it at none, the last done at {}",
                ident.probes,
                secs(ident.last_probe.2),
            ));
        }
        if search_ok {
            evidence.extend([ident.search.invoke, ident.search.done]);
            said.push(if never {
                format!(
                    "read back by id, yet the read-back search by identifier at {} did not show it either",
                    secs(ident.search.done_us)
                )
            } else {
                format!(
                    "the read-back search by identifier at {} showed it",
                    secs(ident.search.done_us)
                )
            });
        }
        let detail = format!(
            "{}, but no search showed it before the read-back: {}",
            self.describe(c),
            said.join("; ")
        );
        let subject = super::detail::Subject {
            rtype: ident.rtype,
            id: self.writes[c as usize].id,
            identifier: ident.identifier,
        };
        let f = self.finding(Kind::InvisibleWrite, subject, detail, evidence);
        self.findings.push(f);
    }
}
