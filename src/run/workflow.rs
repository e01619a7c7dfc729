//! One synthetic encounter, step by step, the way an AI integration drives an EHR:
//! admit, look the patient up by MRN, read the latest observations, write back the AI's
//! results, bill, close the encounter with `If-Match`, read back what it wrote. Every
//! interaction goes through `fhir::Client`; a failed step is recorded, never fatal.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::fhir::{Client, Ctx, Reply, RetryPolicy};
use crate::history::{Outcome, Phase};
use crate::scenario::Step;
use crate::synth::{self, Encounter, MRN_SYSTEM, Population, Resource};

/// Shared by every virtual user.
pub struct Workflow {
    pub client: Client,
    pub population: Population,
    pub steps: Vec<(Step, u32)>,
    /// Logical process ids: a fresh one per encounter and after every `info` (Jepsen).
    pub processes: AtomicU64,
    /// Encounters started so far.
    pub started: AtomicU64,
    /// Encounters abandoned because admission failed.
    pub abandoned: AtomicU64,
    /// Writes skipped because a resource they reference was never created.
    pub skipped: AtomicU64,
}

/// The state of one encounter in flight.
struct Visit<'a> {
    flow: &'a Workflow,
    ctx: Ctx,
    /// `urn:uuid:` key → `Type/id` of what the server created.
    ids: HashMap<String, String>,
    /// Written resources: (type, id).
    written: Vec<(String, String)>,
    encounter_version: Option<String>,
}

impl Workflow {
    pub fn new(client: Client, population: Population, steps: Vec<(Step, u32)>) -> Arc<Self> {
        Arc::new(Self {
            client,
            population,
            steps,
            processes: AtomicU64::new(0),
            started: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// Runs encounter `n`; `intended` is its scheduled start under the open model.
    pub async fn encounter(&self, n: u64, intended: Option<Instant>) {
        let enc = self.population.encounter(n);
        let mut visit = Visit {
            flow: self,
            ctx: Ctx {
                process: self.processes.fetch_add(1, Ordering::Relaxed),
                phase: Phase::Load,
                step: None,
                intended,
            },
            ids: HashMap::new(),
            written: Vec::new(),
            encounter_version: None,
        };
        for (step, weight) in &self.steps {
            for _ in 0..*weight {
                if goose::is_killswitch_triggered() {
                    return; // Ctrl-C: stop between steps, the report is partial
                }
                visit.ctx.step = Some(step.as_str());
                if !visit.step(*step, &enc).await {
                    self.abandoned.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                visit.ctx.intended = None;
            }
        }
    }

    fn conditional(&self) -> bool {
        self.client.settings().retry.policy == RetryPolicy::IdempotentOnly
    }
}

impl Visit<'_> {
    /// Runs one step; `false` when the encounter cannot go on.
    async fn step(&mut self, step: Step, enc: &Encounter) -> bool {
        match step {
            Step::Admit => self.admit(enc).await,
            Step::LookupPatient => {
                self.lookup_patient(enc).await;
                true
            }
            Step::ReadObservations => {
                self.read_observations(enc).await;
                true
            }
            Step::WriteBack => {
                let all = ai_vitals(enc)
                    .iter()
                    .chain(&enc.conditions)
                    .chain(&enc.medications);
                for r in all.chain(std::iter::once(&enc.note)) {
                    self.write(r).await;
                }
                true
            }
            Step::Billing => {
                self.write(&enc.claim).await;
                true
            }
            Step::CloseEncounter => {
                self.close(enc).await;
                true
            }
            Step::ReadBack => {
                self.read_back(enc).await;
                true
            }
        }
    }

    /// Registers the patient, opens the encounter and records the triage vitals (what
    /// the nurses entered before the AI looks); `false` when there is no encounter.
    async fn admit(&mut self, enc: &Encounter) -> bool {
        if !self.ids.contains_key(&enc.patient.key) && self.write(&enc.patient).await.is_none() {
            return false;
        }
        if !self.ids.contains_key(&enc.encounter.key) && self.write(&enc.encounter).await.is_none()
        {
            return false;
        }
        for r in triage_vitals(enc) {
            self.write(r).await;
        }
        true
    }

    /// Creates a resource after resolving its references; `None` when it was not created
    /// (or a reference it needs was never created, in which case nothing is sent).
    async fn write(&mut self, r: &Resource) -> Option<Reply> {
        if self.ids.contains_key(&r.key) {
            return None;
        }
        let mut body = r.body.clone();
        synth::resolve(&mut body, &self.ids);
        if has_placeholder(&body) {
            self.flow.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let reply = self
            .flow
            .client
            .create(self.ctx, &body, &r.identifier, self.flow.conditional())
            .await;
        self.after(&reply);
        let rt = body
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let id = reply.id.clone().filter(|_| reply.is_ok())?;
        self.ids.insert(r.key.clone(), format!("{rt}/{id}"));
        self.written.push((rt.clone(), id));
        if rt == "Encounter" {
            self.encounter_version.clone_from(&reply.version);
        }
        Some(reply)
    }

    async fn lookup_patient(&mut self, enc: &Encounter) {
        let Some(mrn) = mrn(&enc.patient.body) else {
            return;
        };
        let value = format!("{MRN_SYSTEM}|{mrn}");
        let reply = self
            .flow
            .client
            .search(self.ctx, "Patient", &[("identifier", &value)], None)
            .await;
        self.after(&reply);
    }

    async fn read_observations(&mut self, enc: &Encounter) {
        let Some(patient) = self.ids.get(&enc.patient.key).cloned() else {
            return;
        };
        let params = [("patient", patient.as_str()), ("_count", "20")];
        let reply = self
            .flow
            .client
            .search(self.ctx, "Observation", &params, None)
            .await;
        self.after(&reply);
    }

    async fn close(&mut self, enc: &Encounter) {
        let Some(reference) = self.ids.get(&enc.encounter.key).cloned() else {
            return;
        };
        let Some((_, id)) = reference.split_once('/') else {
            return;
        };
        let mut body = enc.encounter.body.clone();
        synth::resolve(&mut body, &self.ids);
        let mut closed = synth::closed(&body);
        closed["id"] = Value::String(id.to_owned());
        let version = self.encounter_version.clone();
        let reply = self
            .flow
            .client
            .update(self.ctx, &closed, id, version.as_deref())
            .await;
        self.after(&reply);
        if reply.is_ok() {
            self.encounter_version = reply.version;
        }
    }

    /// Reads back what this encounter wrote the way a clinician's screen would: the
    /// encounter by id (the one resource it updated, where a stale read shows), and
    /// every other type it wrote by searching the patient's records, following `next`
    /// links as given. Searches are what prove new data is visible.
    async fn read_back(&mut self, enc: &Encounter) {
        if let Some(reference) = self.ids.get(&enc.encounter.key).cloned()
            && let Some((rt, id)) = reference.split_once('/')
        {
            let reply = self.flow.client.read(self.ctx, rt, id).await;
            self.after(&reply);
        }
        let Some(patient) = self.ids.get(&enc.patient.key).cloned() else {
            return;
        };
        let mut types: Vec<String> = self.written.iter().map(|(rt, _)| rt.clone()).collect();
        types.sort();
        types.dedup();
        for rt in types.iter().filter(|rt| rt.as_str() != "Patient") {
            self.search_all(rt, &[("patient", patient.as_str()), ("_count", "50")])
                .await;
        }
    }

    /// A search and its `next` pages (at most [`MAX_PAGES`]).
    async fn search_all(&mut self, rt: &str, params: &[(&str, &str)]) {
        let mut reply = self.flow.client.search(self.ctx, rt, params, None).await;
        self.after(&reply);
        for _ in 1..MAX_PAGES {
            let Some(next) = reply.next.take().filter(|_| reply.is_ok()) else {
                return;
            };
            reply = self.flow.client.next_page(self.ctx, rt, &next).await;
            self.after(&reply);
        }
    }

    /// After an `info`, the process is crashed: go on under a fresh id.
    fn after(&mut self, reply: &Reply) {
        if reply.outcome == Some(Outcome::Info) {
            self.ctx.process = self.flow.processes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Most pages one search follows.
const MAX_PAGES: usize = 20;

/// The vitals recorded at triage: all but the last, which the AI writes back.
fn triage_vitals(enc: &Encounter) -> &[Resource] {
    &enc.vitals[..enc.vitals.len().saturating_sub(1)]
}

/// The vital sign the AI writes back (the last one generated).
fn ai_vitals(enc: &Encounter) -> &[Resource] {
    &enc.vitals[enc.vitals.len().saturating_sub(1)..]
}

fn mrn(patient: &Value) -> Option<String> {
    patient
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(MRN_SYSTEM))?
        .get("value")?
        .as_str()
        .map(str::to_owned)
}

/// Whether a reference still points at an uncreated `urn:uuid:` placeholder.
fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "reference" && v.as_str().is_some_and(|s| s.starts_with("urn:uuid:")))
                || has_placeholder(v)
        }),
        Value::Array(items) => items.iter().any(has_placeholder),
        _ => false,
    }
}
