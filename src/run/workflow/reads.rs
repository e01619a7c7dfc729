//! The encounter's reads and its one update, in the EHR's dialect: the MRN lookup, the
//! real-time read of observations (with the search parameters the EHR requires), the
//! close of the encounter (`If-Match` where the EHR takes it), and the read-back of
//! what the encounter wrote, following `next` links as given and re-issuing a search
//! once when the EHR says its paging session expired.

use std::collections::HashSet;

use serde_json::Value;

use super::{Slot, Visit, observe, pairs};
use crate::fhir::Reply;
use crate::history::Content;
use crate::profile::Verb;
use crate::profile::dialect::{self, Decision, Quirk};
use crate::report::mapping::Action;
use crate::synth::{self, Encounter};

/// Most pages one search follows.
const MAX_PAGES: usize = 20;

impl Visit<'_> {
    pub(super) async fn lookup_patient(&mut self, enc: &Encounter) {
        let value = self.mrn_query(enc);
        let Some(params) =
            self.mapper()
                .search("Patient", &[("identifier", &value)], &[], "skipped")
        else {
            return;
        };
        let reply = self
            .flow
            .client
            .search(self.send_ctx(), "Patient", &pairs(&params), None)
            .await;
        self.after(&reply);
    }

    pub(super) async fn read_observations(&mut self, enc: &Encounter) {
        let Some(patient) = self.ids.get(&enc.patient.key).cloned() else {
            return;
        };
        let codes = vital_codes(enc);
        let offers = offers("Observation", &codes);
        let base = [("patient", patient.as_str()), ("_count", "20")];
        let Some(params) = self
            .mapper()
            .search("Observation", &base, &offers, "skipped")
        else {
            return;
        };
        let reply = self
            .flow
            .client
            .search(self.send_ctx(), "Observation", &pairs(&params), None)
            .await;
        self.after(&reply);
    }

    pub(super) async fn close(&mut self, enc: &Encounter) {
        let Some(reference) = self.ids.get(&enc.encounter.key).cloned() else {
            return;
        };
        let Some((_, id)) = reference.split_once('/') else {
            return;
        };
        if let Slot::Borrowed { .. } = self.encounter {
            let reason = "the encounter is the EHR's, not the harness's";
            self.mapper()
                .decided("Encounter", "update", Action::Skipped, reason, "not closed");
            return;
        }
        if self.mapper().decide("Encounter", Verb::Update) != Decision::Do {
            self.mapper()
                .unsupported("Encounter", "update", "not closed");
            return;
        }
        let mut body = enc.encounter.body.clone();
        synth::resolve(&mut body, &self.ids);
        let mut closed = synth::closed(&body);
        closed["id"] = Value::String(id.to_owned());
        let Some(mapped) = self.map(&closed, enc, "update") else {
            return;
        };
        let version = self.if_match();
        let reply = self
            .flow
            .client
            .update(self.send_ctx(), &mapped.body, id, version.as_deref())
            .await;
        self.after(&reply);
        self.mapper().saw(observe::write_quirks(false, &reply));
        if reply.is_ok() {
            self.encounter_version = reply.version;
            self.encounter = Slot::Own { open: false };
            let content = Content::of(&mapped.body);
            self.sent.insert(enc.encounter.identifier.clone(), content);
        }
    }

    /// The version to send in `If-Match`: none where the EHR does not take it (counted).
    fn if_match(&self) -> Option<String> {
        let version = self.encounter_version.clone();
        let profile = self.mapper().profile();
        if dialect::sends_if_match(profile) || version.is_none() {
            return version;
        }
        let reason = format!("If-Match {}", dialect::unsupported(profile));
        let outcome = "updated without it (last writer wins)";
        self.mapper()
            .decided("Encounter", "update", Action::Replaced, &reason, outcome);
        None
    }

    /// Reads back what this encounter wrote the way a clinician's screen would: the
    /// encounter by id (the one resource it updated, where a stale read shows), and
    /// every other type it wrote by searching the patient's records, following `next`
    /// links as given. Searches are what prove new data is visible.
    pub(super) async fn read_back(&mut self, enc: &Encounter) {
        if let Some(reference) = self.ids.get(&enc.encounter.key).cloned()
            && let Some((rt, id)) = reference.split_once('/')
        {
            if self.mapper().decide(rt, Verb::Read) == Decision::Do {
                let reply = self.flow.client.read(self.send_ctx(), rt, id).await;
                self.after(&reply);
                self.compare(&reply);
            } else {
                self.mapper().unsupported(rt, "read", "skipped");
            }
        }
        let Some(patient) = self.ids.get(&enc.patient.key).cloned() else {
            return;
        };
        let mut types: Vec<String> = self.written.iter().map(|(rt, _)| rt.clone()).collect();
        types.sort();
        types.dedup();
        let codes = vital_codes(enc);
        for rt in types.iter().filter(|rt| rt.as_str() != "Patient") {
            let base = [("patient", patient.as_str()), ("_count", "50")];
            let offers = offers(rt, &codes);
            if let Some(params) = self.mapper().search(rt, &base, &offers, "skipped") {
                self.search_all(rt, &params).await;
            }
        }
    }

    /// A search and its `next` pages (at most [`MAX_PAGES`]). A page answering the EHR's
    /// expired-session error re-issues the search from the start, once.
    async fn search_all(&mut self, rt: &str, params: &[(String, String)]) {
        let params = pairs(params);
        let mut reply = self
            .flow
            .client
            .search(self.send_ctx(), rt, &params, None)
            .await;
        self.after(&reply);
        let mut seen = Pages::default();
        seen.take(&reply);
        self.compare(&reply);
        let mut reissued = false;
        let mut pages = std::collections::HashSet::new();
        for _ in 1..MAX_PAGES {
            let Some(next) = reply.next.take().filter(|_| reply.is_ok()) else {
                break;
            };
            if !pages.insert(next.clone()) {
                // A link back to a page already read: recorded, and paging stops.
                self.flow.client.next_loop(self.send_ctx(), rt, &next).await;
                break;
            }
            reply = self.flow.client.next_page(self.send_ctx(), rt, &next).await;
            self.after(&reply);
            let profile = self.mapper().profile();
            let expired =
                !reply.is_ok() && dialect::page_expired(profile, reply.status, reply.body.as_ref());
            if expired && !reissued {
                reissued = true;
                self.mapper().saw([Quirk::PagingSessionExpired]);
                reply = self
                    .flow
                    .client
                    .search(self.send_ctx(), rt, &params, None)
                    .await;
                self.after(&reply);
                seen = Pages::default();
                pages.clear();
            }
            seen.take(&reply);
            self.compare(&reply);
        }
        if seen.duplicates {
            self.mapper().saw([Quirk::DuplicatesAcrossPages]);
        }
    }

    /// Notes the elements a read-back shows changed that the profile declares changed.
    fn compare(&self, reply: &Reply) {
        let profile = self.mapper().profile();
        let mut quirks = Vec::new();
        for s in &reply.seen {
            let Some(content) = &s.content else {
                continue;
            };
            for sent in s.identifiers.iter().filter_map(|i| self.sent.get(i)) {
                for element in observe::changed_elements(sent, content) {
                    let q = Quirk::ExpectedChange {
                        resource_type: s.resource_type.clone(),
                        element: element.to_owned(),
                    };
                    if dialect::declares(profile, &q) {
                        quirks.push(q);
                    }
                }
            }
        }
        self.mapper().saw(quirks);
    }
}

/// The ids one search has shown so far.
#[derive(Default)]
struct Pages {
    ids: HashSet<(String, String)>,
    duplicates: bool,
}

impl Pages {
    fn take(&mut self, reply: &Reply) {
        for s in &reply.seen {
            if !self.ids.insert((s.resource_type.clone(), s.id.clone())) {
                self.duplicates = true;
            }
        }
    }
}

/// Search parameters the workflow can add when the EHR requires them: vital signs are
/// searched by category, or by the LOINC codes of the encounter's vitals.
fn offers<'a>(rt: &str, codes: &'a str) -> Vec<(&'static str, &'a str)> {
    match rt {
        "Observation" if !codes.is_empty() => vec![("category", "vital-signs"), ("code", codes)],
        "Observation" => vec![("category", "vital-signs")],
        _ => Vec::new(),
    }
}

/// `system|code,…` of the encounter's vitals (their first coding).
fn vital_codes(enc: &Encounter) -> String {
    let mut codes: Vec<String> = enc
        .vitals
        .iter()
        .filter_map(|v| {
            let c = v.body.pointer("/code/coding/0")?;
            Some(format!(
                "{}|{}",
                c.get("system")?.as_str()?,
                c.get("code")?.as_str()?
            ))
        })
        .collect();
    codes.sort();
    codes.dedup();
    codes.join(",")
}
