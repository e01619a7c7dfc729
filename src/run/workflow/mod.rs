//! One synthetic encounter, step by step, the way an AI integration drives an EHR:
//! admit, look the patient up by MRN, read the latest observations, write back the AI's
//! results, bill, close the encounter with `If-Match`, read back what it wrote. Every
//! interaction goes through `fhir::Client`; a failed step is recorded, never fatal.
//!
//! Everything is said in the profile's dialect (`profile::dialect`, applied through the
//! shared [`Mapper`]): what the EHR cannot do is replaced by what a real integration
//! does (Epic cannot create an Encounter: an existing one of the patient is used) or
//! skipped, and either way counted for the report, never silently.

mod bundle;
mod mapper;
mod observe;
mod race;
mod reads;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use mapper::Mapper;
pub use race::Races;

use crate::fhir::{Client, Ctx, Reply, RetryPolicy};
use crate::history::{Content, Outcome, Phase};
use crate::profile::Verb;
use crate::profile::dialect::{self, Context, Decision, EncounterState, Mapped, Replacement};
use crate::report::mapping::Action;
use crate::scenario::{Group, Step, WriteBack};
use crate::synth::{self, Encounter, MRN_SYSTEM, Population, Resource};

/// Shared by every virtual user.
pub struct Workflow {
    pub client: Client,
    pub population: Population,
    pub steps: Vec<(Step, u32)>,
    /// User groups, each with its own steps and think time (none: every user runs
    /// `steps`).
    pub groups: Vec<Group>,
    /// The profile's dialect and the tally of what it changed.
    pub mapper: Arc<Mapper>,
    /// Logical process ids: a fresh one per encounter and after every `info` (Jepsen).
    pub processes: AtomicU64,
    /// Encounters started so far.
    pub started: AtomicU64,
    /// Encounters abandoned because admission failed.
    pub abandoned: AtomicU64,
    /// Writes skipped because a resource they reference was never created.
    pub skipped: AtomicU64,
    /// What the `contended_update` races saw.
    pub races: Races,
    /// Probes acknowledged creates until search shows them (set once, before the load).
    pub prober: std::sync::OnceLock<crate::run::visibility::Prober>,
    /// How the `write_back` step sends the AI's results.
    pub write_back: WriteBack,
}

/// How an encounter ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Completed,
    /// Admission failed: the rest of the workflow could not run.
    Abandoned,
    /// Ctrl-C between steps.
    Interrupted,
}

/// Where the visit's encounter stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not admitted yet.
    Pending,
    /// Created by the harness; `open` until closed.
    Own { open: bool },
    /// The EHR's own, found by search: used, never changed.
    Borrowed { open: bool },
    /// None could be created or found: the encounter goes on without one.
    Absent,
}

/// How a create is to be made.
enum Plan {
    Create {
        conditional: bool,
    },
    UseExisting,
    /// Not at all (counted).
    Nothing,
}

/// The state of one encounter in flight.
struct Visit<'a> {
    flow: &'a Workflow,
    ctx: Ctx,
    /// `urn:uuid:` key → `Type/id` of what the server created (or the EHR already had).
    ids: HashMap<String, String>,
    /// Written resources: (type, id).
    written: Vec<(String, String)>,
    encounter_version: Option<String>,
    encounter: Slot,
    /// What was sent, by harness identifier: read-backs are compared with it.
    sent: HashMap<String, Content>,
    /// A reference to the encounter's clinician.
    practitioner: Option<Value>,
}

impl Workflow {
    pub fn new(
        client: Client,
        population: Population,
        steps: Vec<(Step, u32)>,
        groups: Vec<Group>,
        mapper: Arc<Mapper>,
    ) -> Arc<Self> {
        Self::with_write_back(client, population, steps, groups, mapper, WriteBack::Single)
    }

    /// [`Workflow::new`], with the `write_back` step sending as `write_back` says.
    pub fn with_write_back(
        client: Client,
        population: Population,
        steps: Vec<(Step, u32)>,
        groups: Vec<Group>,
        mapper: Arc<Mapper>,
        write_back: WriteBack,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            population,
            steps,
            groups,
            mapper,
            processes: AtomicU64::new(0),
            started: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            races: Races::default(),
            prober: std::sync::OnceLock::new(),
            write_back,
        })
    }

    /// Runs encounter `n`; `intended` is its scheduled start under the open model: the
    /// encounter's first request is timed from it, every later one from its own send.
    pub async fn encounter(&self, n: u64, intended: Option<Instant>, group: Option<u16>) -> Ended {
        let enc = self.population.encounter(n);
        let mut visit = Visit {
            flow: self,
            ctx: Ctx {
                process: self.processes.fetch_add(1, Ordering::Relaxed),
                phase: Phase::Load,
                step: None,
                intended,
                group,
            },
            ids: HashMap::new(),
            written: Vec::new(),
            encounter_version: None,
            encounter: Slot::Pending,
            sent: HashMap::new(),
            practitioner: enc
                .encounter
                .body
                .pointer("/participant/0/individual")
                .cloned(),
        };
        let g = group.and_then(|g| self.groups.get(usize::from(g)));
        let (steps, think) = match g {
            Some(g) => (&g.workflow, g.think_time),
            None => (&self.steps, Duration::ZERO),
        };
        let mut first = true;
        for (step, weight) in steps {
            for _ in 0..*weight {
                if !std::mem::take(&mut first) && !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
                if goose::is_killswitch_triggered() {
                    return Ended::Interrupted; // Ctrl-C: stop between steps, the report is partial
                }
                visit.ctx.step = Some(step.as_str());
                if !visit.step(*step, &enc).await {
                    self.abandoned.fetch_add(1, Ordering::Relaxed);
                    return Ended::Abandoned;
                }
            }
        }
        Ended::Completed
    }

    /// Whether the retry policy wants creates made safe to repeat (`If-None-Exist`).
    fn conditional(&self) -> bool {
        self.client.settings().retry.policy == RetryPolicy::IdempotentOnly
    }
}

impl Visit<'_> {
    fn mapper(&self) -> &Mapper {
        &self.flow.mapper
    }

    /// The context of a request about to be sent: only the encounter's first request
    /// carries the intended start, so each later one is timed from its own send.
    fn send_ctx(&mut self) -> Ctx {
        let ctx = self.ctx;
        self.ctx.intended = None;
        ctx
    }

    /// Runs one step; `false` when the encounter cannot go on.
    async fn step(&mut self, step: Step, enc: &Encounter) -> bool {
        match step {
            Step::Admit => return self.admit(enc).await,
            Step::LookupPatient => self.lookup_patient(enc).await,
            Step::ReadObservations => self.read_observations(enc).await,
            Step::WriteBack => {
                let all: Vec<&Resource> = ai_vitals(enc)
                    .iter()
                    .chain(&enc.conditions)
                    .chain(&enc.medications)
                    .chain(std::iter::once(&enc.note))
                    .collect();
                match self.flow.write_back {
                    WriteBack::Transaction => self.write_back_transaction(&all, enc).await,
                    WriteBack::Single => {
                        for r in all {
                            self.write(r, enc).await;
                        }
                    }
                }
            }
            Step::Billing => {
                self.write(&enc.claim, enc).await;
            }
            Step::CloseEncounter => self.close(enc).await,
            Step::ReadBack => self.read_back(enc).await,
            Step::ContendedUpdate => self.contended_update(enc).await,
        }
        true
    }

    /// Registers the patient, opens the encounter and records the triage vitals (what
    /// the nurses entered before the AI looks); `false` when there is no patient, or
    /// the encounter could have been created and was not.
    async fn admit(&mut self, enc: &Encounter) -> bool {
        if !self.ids.contains_key(&enc.patient.key) && self.write(&enc.patient, enc).await.is_none()
        {
            return false;
        }
        if self.encounter == Slot::Pending {
            self.write(&enc.encounter, enc).await;
            if self.encounter == Slot::Pending {
                return false;
            }
        }
        for r in triage_vitals(enc) {
            self.write(r, enc).await;
        }
        true
    }

    /// Creates a resource in the EHR's dialect after resolving its references; `None`
    /// when it was not created (unsupported, not acceptable, or a reference it needs was
    /// never created: then nothing is sent). A resource the EHR owns and will not let
    /// the harness create is looked up instead (its search reply is returned).
    async fn write(&mut self, r: &Resource, enc: &Encounter) -> Option<Reply> {
        if self.ids.contains_key(&r.key) {
            return None;
        }
        let rt = r.resource_type.as_str();
        let conditional = match self.plan_create(rt) {
            Plan::Create { conditional } => conditional,
            Plan::UseExisting => return self.use_existing(r, enc).await,
            Plan::Nothing => return None,
        };
        let mut body = r.body.clone();
        synth::resolve(&mut body, &self.ids);
        let mapped = self.map(&body, enc, "create")?;
        if has_placeholder(&mapped.body) {
            self.flow.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let reply = self
            .flow
            .client
            .create(self.send_ctx(), &mapped.body, &r.identifier, conditional)
            .await;
        self.after(&reply);
        self.mapper()
            .saw(observe::write_quirks(!conditional, &reply));
        self.sent
            .insert(r.identifier.clone(), Content::of(&mapped.body));
        let id = reply.id.clone().filter(|_| reply.is_ok())?;
        let existing = conditional && reply.status == Some(200);
        if let (Some(prober), false) = (self.flow.prober.get(), existing) {
            prober.watch(rt, &r.identifier);
        }
        self.ids.insert(r.key.clone(), format!("{rt}/{id}"));
        self.written.push((rt.to_owned(), id));
        if rt == "Encounter" {
            self.encounter_version.clone_from(&reply.version);
            self.encounter = Slot::Own { open: true };
        }
        Some(reply)
    }

    /// How to create a resource of `rt` in this EHR (a fallback or a skip is counted).
    fn plan_create(&mut self, rt: &str) -> Plan {
        let wanted = if self.flow.conditional() {
            Verb::ConditionalCreate
        } else {
            Verb::Create
        };
        match self.mapper().decide(rt, wanted) {
            Decision::Do => Plan::Create {
                conditional: wanted == Verb::ConditionalCreate,
            },
            Decision::Replace(Replacement::PlainCreate) => {
                let profile = self.mapper().profile();
                let reason = format!("If-None-Exist {}", dialect::unsupported(profile));
                let outcome = "plain create (a retried create may file twice)";
                self.mapper()
                    .decided(rt, "conditional_create", Action::Replaced, &reason, outcome);
                Plan::Create { conditional: false }
            }
            Decision::Replace(Replacement::UseExisting) => Plan::UseExisting,
            Decision::Skip(reason) => {
                self.mapper()
                    .decided(rt, "create", Action::Skipped, &reason, "skipped");
                if rt == "Encounter" {
                    self.encounter = Slot::Absent;
                }
                Plan::Nothing
            }
        }
    }

    /// `body` in the EHR's dialect, its changes counted; `None` (counted as a skip of
    /// `interaction`) when the EHR cannot take it.
    fn map(&self, body: &Value, enc: &Encounter, interaction: &'static str) -> Option<Mapped> {
        let encounter = match self.encounter {
            Slot::Absent => EncounterState::Absent {
                placeholder: &enc.encounter.key,
            },
            Slot::Own { open } | Slot::Borrowed { open } => EncounterState::Present { open },
            Slot::Pending => EncounterState::Present { open: true },
        };
        let ctx = Context {
            encounter,
            practitioner: self.practitioner.as_ref(),
        };
        let rt = body
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match dialect::write(self.mapper().profile(), body, &ctx) {
            Ok(m) => {
                self.mapper().adjusted(rt, interaction, &m.changes);
                Some(m)
            }
            Err(reason) => {
                self.mapper()
                    .decided(rt, interaction, Action::Skipped, &reason, "skipped");
                None
            }
        }
    }

    /// What a real integration does when the EHR will not let it create the patient or
    /// the encounter: search for the existing one and use it. The encounter goes on
    /// without an encounter when none is found; without a patient it cannot.
    async fn use_existing(&mut self, r: &Resource, enc: &Encounter) -> Option<Reply> {
        let rt = r.resource_type.as_str();
        let what = rt.to_lowercase();
        let reply = self.find_existing(rt, enc).await;
        let found = reply
            .as_ref()
            .filter(|r| r.is_ok())
            .and_then(|r| existing(r.body.as_ref()?, rt));
        let reason = dialect::unsupported(self.mapper().profile());
        let Some((id, open)) = found else {
            if rt == "Encounter" {
                self.encounter = Slot::Absent;
            }
            let outcome = match &reply {
                Some(r) if r.is_ok() => format!("no existing {what} found"),
                Some(_) => format!("the search for an existing {what} failed"),
                None => return None, // counted by `search`
            };
            self.mapper()
                .decided(rt, "create", Action::Skipped, &reason, &outcome);
            return None;
        };
        let outcome = format!("used an existing {what}");
        self.mapper()
            .decided(rt, "create", Action::Replaced, &reason, &outcome);
        self.ids.insert(r.key.clone(), format!("{rt}/{id}"));
        if rt == "Encounter" {
            self.encounter = Slot::Borrowed { open };
        }
        reply
    }

    /// Searches the patient by MRN, or the patient's encounters; `None` when the EHR
    /// would refuse any such search (counted).
    async fn find_existing(&mut self, rt: &str, enc: &Encounter) -> Option<Reply> {
        let (key, value) = match rt {
            "Patient" => ("identifier", self.mrn_query(enc)),
            _ => ("patient", self.ids.get(&enc.patient.key)?.clone()),
        };
        let outcome = format!("no search could find an existing {}", rt.to_lowercase());
        let params = self.mapper().search(rt, &[(key, &value)], &[], &outcome)?;
        let reply = self
            .flow
            .client
            .search(self.send_ctx(), rt, &pairs(&params), None)
            .await;
        self.after(&reply);
        Some(reply)
    }

    /// `system|value` of the patient's MRN, under the EHR's MRN system.
    fn mrn_query(&self, enc: &Encounter) -> String {
        let system = dialect::mrn_system(self.mapper().profile()).unwrap_or(MRN_SYSTEM);
        format!("{system}|{}", mrn(&enc.patient.body).unwrap_or_default())
    }

    /// After an `info`, the process is crashed: go on under a fresh id. A 429 is noted.
    fn after(&mut self, reply: &Reply) {
        if reply.outcome == Some(Outcome::Info) {
            self.ctx.process = self.flow.processes.fetch_add(1, Ordering::Relaxed);
        }
        self.mapper().saw(observe::throttled(reply));
    }
}

/// The first resource of type `rt` in a searchset, an open one first for an Encounter:
/// its id and whether it is open.
fn existing(bundle: &Value, rt: &str) -> Option<(String, bool)> {
    let found: Vec<(String, bool)> = bundle
        .get("entry")?
        .as_array()?
        .iter()
        .filter_map(|e| e.get("resource"))
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(rt))
        .filter_map(|r| {
            let id = r.get("id")?.as_str()?.to_owned();
            let status = r.get("status").and_then(Value::as_str).unwrap_or("");
            Some((id, dialect::is_open_status(status)))
        })
        .collect();
    let open = found.iter().find(|(_, open)| *open || rt != "Encounter");
    open.or(found.first()).cloned()
}

/// Owned parameters as the client takes them.
fn pairs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_open_encounter_is_preferred_and_any_patient_will_do() {
        let b = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Encounter", "id": "old", "status": "finished"}},
            {"resource": {"resourceType": "Encounter", "id": "now", "status": "in-progress"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}
        ]});
        assert_eq!(existing(&b, "Encounter"), Some(("now".into(), true)));
        let closed = json!({"entry": [{"resource": {"resourceType": "Encounter", "id": "old", "status": "finished"}}]});
        assert_eq!(existing(&closed, "Encounter"), Some(("old".into(), false)));
        let p = json!({"entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]});
        assert_eq!(existing(&p, "Patient"), Some(("p1".into(), false)));
        assert_eq!(
            existing(&json!({"resourceType": "Bundle"}), "Patient"),
            None
        );
    }
}
