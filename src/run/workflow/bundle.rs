//! The `write_back` step as one transaction Bundle (`write_back = "transaction"`): the
//! AI's results as conditional creates (`ifNoneExist`, where the EHR takes them) that
//! refer to each other by their `urn:uuid:` keys, the way an integration that must not
//! leave half a result set behind sends them. Where the profile says the EHR takes no
//! transactions, the results go as single writes and the mapping section says so. A
//! resource the dialect cannot put in the Bundle (one the EHR will not let the harness
//! create, or one referring to a resource not in it) goes its usual single way.

use std::collections::HashSet;

use crate::fhir::{Entry, entry_content};
use crate::history::Interaction;
use crate::profile::Verb;
use crate::profile::dialect::{self, Decision, Replacement};
use crate::report::mapping::Action;
use crate::synth::{self, Encounter, Resource};

use super::{Visit, has_placeholder};

/// One resource ready for the Bundle.
struct Ready<'a> {
    resource: &'a Resource,
    body: serde_json::Value,
    conditional: bool,
}

impl Visit<'_> {
    /// Writes `all` back as one transaction, or singly where the EHR takes no
    /// transactions (counted); what cannot go in the Bundle is written singly after it.
    pub(super) async fn write_back_transaction(&mut self, all: &[&Resource], enc: &Encounter) {
        let profile = self.mapper().profile();
        if !profile.supports("", Interaction::Transaction) {
            let reason = format!("transaction Bundles {}", dialect::unsupported(profile));
            self.mapper().decided(
                "Bundle",
                "transaction",
                Action::Replaced,
                &reason,
                "single writes (a failure can leave part of the results behind)",
            );
            return self.write_each(all, enc).await;
        }
        let (ready, single) = self.prepare(all, enc);
        if !ready.is_empty() {
            self.send_transaction(&ready).await;
        }
        self.write_each(&single, enc).await;
    }

    async fn write_each(&mut self, all: &[&Resource], enc: &Encounter) {
        for r in all {
            self.write(r, enc).await;
        }
    }

    /// The resources that go in the Bundle, in the dialect, and those that go singly.
    fn prepare<'a>(
        &mut self,
        all: &[&'a Resource],
        enc: &Encounter,
    ) -> (Vec<Ready<'a>>, Vec<&'a Resource>) {
        let mut ready: Vec<Ready<'a>> = Vec::new();
        let mut single = Vec::new();
        let mut keys: HashSet<&str> = HashSet::new();
        for &r in all {
            if self.ids.contains_key(&r.key) {
                continue;
            }
            let Some(conditional) = self.entry_create(&r.resource_type) else {
                single.push(r);
                continue;
            };
            let mut body = r.body.clone();
            synth::resolve(&mut body, &self.ids);
            let Some(mapped) = self.map(&body, enc, "create") else {
                continue; // counted by `map`
            };
            if refers_outside(&mapped.body, &keys) {
                self.flow
                    .skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            keys.insert(&r.key);
            ready.push(Ready {
                resource: r,
                body: mapped.body,
                conditional,
            });
        }
        (ready, single)
    }

    /// Whether a resource of `rt` goes in the Bundle, and conditionally: `None` when the
    /// EHR needs something else (the single-write path decides and counts that).
    fn entry_create(&self, rt: &str) -> Option<bool> {
        match self.mapper().decide(rt, Verb::ConditionalCreate) {
            Decision::Do => Some(true),
            Decision::Replace(Replacement::PlainCreate) => {
                let profile = self.mapper().profile();
                let reason = format!("ifNoneExist {}", dialect::unsupported(profile));
                let outcome = "plain create entry (a re-sent transaction may file twice)";
                self.mapper()
                    .decided(rt, "conditional_create", Action::Replaced, &reason, outcome);
                Some(false)
            }
            _ => None,
        }
    }

    /// Sends the Bundle and takes what each entry reported.
    async fn send_transaction(&mut self, ready: &[Ready<'_>]) {
        let urns: Vec<&str> = ready.iter().map(|r| r.resource.key.as_str()).collect();
        let entries: Vec<Entry<'_>> = ready
            .iter()
            .map(|r| Entry {
                resource: &r.body,
                identifier: &r.resource.identifier,
                full_url: &r.resource.key,
                conditional: r.conditional,
            })
            .collect();
        let ctx = self.send_ctx();
        let reply = self.flow.client.transaction(ctx, &entries).await;
        self.after(&reply);
        for (r, e) in ready.iter().zip(&reply.entries) {
            let res = r.resource;
            let rt = res.resource_type.as_str();
            self.sent
                .insert(res.identifier.clone(), entry_content(&r.body, &urns));
            let Some(id) = e.id.clone().filter(|_| e.is_ok()) else {
                continue;
            };
            let existing = r.conditional && e.status == Some(200);
            if let (Some(prober), false) = (self.flow.prober.get(), existing) {
                prober.watch(rt, &res.identifier);
            }
            self.ids.insert(res.key.clone(), format!("{rt}/{id}"));
            self.written.push((rt.to_owned(), id));
        }
    }
}

/// Whether a body still refers to an uncreated resource that is not an earlier entry.
fn refers_outside(body: &serde_json::Value, keys: &HashSet<&str>) -> bool {
    let mut v = body.clone();
    strip(&mut v, keys);
    has_placeholder(&v)
}

/// Drops references to `keys` (so only the others remain to be found).
fn strip(v: &mut serde_json::Value, keys: &HashSet<&str>) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|k, v| !(k == "reference" && v.as_str().is_some_and(|s| keys.contains(s))));
            map.values_mut().for_each(|v| strip(v, keys));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_references_to_earlier_entries_may_stay_unresolved() {
        let body = json!({"subject": {"reference": "Patient/p"},
            "reasonReference": [{"reference": "urn:uuid:c1"}]});
        let mut keys = HashSet::new();
        assert!(refers_outside(&body, &keys));
        keys.insert("urn:uuid:c1");
        assert!(!refers_outside(&body, &keys));
        let other = json!({"encounter": {"reference": "urn:uuid:e"}});
        assert!(refers_outside(&other, &keys));
    }
}
