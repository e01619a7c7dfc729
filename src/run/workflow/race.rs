//! Racing writers (`contended_update`): the nurse closes the encounter while the AI
//! agent amends it, both from the same version with `If-Match`, sent at once by two
//! logical processes. A server that honours `If-Match` refuses one (412, or 409): the
//! loser re-reads and tries again under the retry policy. A server that acknowledges
//! both has lost an update — the checker reports it from the history; this step only
//! drives the race and counts what it saw.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::{Slot, Visit};
use crate::fhir::{Reply, RetryPolicy};
use crate::profile::Verb;
use crate::profile::dialect::{self, Decision};
use crate::report::mapping::Action;
use crate::synth::{self, Encounter};

/// What the races of a run saw.
#[derive(Debug, Default)]
pub struct Races {
    /// Races sent (two updates from one version).
    pub run: AtomicU64,
    /// Races in which the server refused one writer (412 or 409).
    pub refused: AtomicU64,
    /// Races in which the server acknowledged both writers.
    pub both_acknowledged: AtomicU64,
    /// Re-read-and-retry attempts by refused writers, and those acknowledged.
    pub retries: AtomicU64,
    pub retries_ok: AtomicU64,
}

/// A refusal of a stale `If-Match`.
fn refused(reply: &Reply) -> bool {
    matches!(reply.status, Some(409 | 412))
}

impl Visit<'_> {
    /// Races two updates of the encounter from its current version.
    pub(super) async fn contended_update(&mut self, enc: &Encounter) {
        let Some(id) = self.raceable(enc) else {
            return;
        };
        let Some(version) = self.encounter_version.clone() else {
            let reason = "the server reported no version for the encounter";
            self.mapper()
                .decided("Encounter", "update", Action::Skipped, reason, "no race");
            return;
        };
        let mut base = enc.encounter.body.clone();
        synth::resolve(&mut base, &self.ids);
        base["id"] = Value::String(id.clone());
        let nurse = synth::closed(&base);
        let agent = amended(&base);
        let (Some(nurse), Some(agent)) = (
            self.map(&nurse, enc, "update"),
            self.map(&agent, enc, "update"),
        ) else {
            return;
        };
        let ctx_a = self.send_ctx();
        let mut ctx_b = ctx_a;
        ctx_b.process = self.flow.processes.fetch_add(1, Ordering::Relaxed);
        let client = &self.flow.client;
        let (a, b) = tokio::join!(
            client.update(ctx_a, &nurse.body, &id, Some(&version)),
            client.update(ctx_b, &agent.body, &id, Some(&version)),
        );
        let races = &self.flow.races;
        races.run.fetch_add(1, Ordering::Relaxed);
        self.after(&a);
        self.after(&b);
        self.encounter_version = None;
        match (a.is_ok(), b.is_ok()) {
            (true, true) => {
                races.both_acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) if refused(&b) => {
                races.refused.fetch_add(1, Ordering::Relaxed);
                self.retry_loser(&id, &agent.body).await;
            }
            (false, true) if refused(&a) => {
                races.refused.fetch_add(1, Ordering::Relaxed);
                self.retry_loser(&id, &nurse.body).await;
            }
            _ => {}
        }
        // Whoever won, the next If-Match needs the version that stands now.
        self.reread(&id).await;
    }

    /// The encounter's id when the harness owns it and may update it (else counted).
    fn raceable(&mut self, enc: &Encounter) -> Option<String> {
        let reference = self.ids.get(&enc.encounter.key).cloned()?;
        let (_, id) = reference.split_once('/')?;
        let problem = match self.encounter {
            Slot::Borrowed { .. } => Some("the encounter is the EHR's, not the harness's".into()),
            _ if self.mapper().decide("Encounter", Verb::Update) != Decision::Do => Some(format!(
                "update {}",
                dialect::unsupported(self.mapper().profile())
            )),
            // Without If-Match a server may rightly let the last writer win: no verdict.
            _ if !dialect::sends_if_match(self.mapper().profile()) => Some(format!(
                "If-Match {}",
                dialect::unsupported(self.mapper().profile())
            )),
            _ => None,
        };
        if let Some(reason) = problem {
            let outcome = "no race (lost_update not measured by this step)";
            self.mapper()
                .decided("Encounter", "update", Action::Skipped, &reason, outcome);
            return None;
        }
        Some(id.to_owned())
    }

    /// The refused writer re-reads the encounter and sends its change again from the
    /// version it now sees, as often as the retry policy allows.
    async fn retry_loser(&mut self, id: &str, body: &Value) {
        let retry = self.flow.client.settings().retry;
        if retry.policy == RetryPolicy::None {
            return;
        }
        for _ in 1..retry.max_attempts {
            let Some(version) = self.reread(id).await else {
                return;
            };
            self.flow.races.retries.fetch_add(1, Ordering::Relaxed);
            let ctx = self.send_ctx();
            let reply = self.flow.client.update(ctx, body, id, Some(&version)).await;
            self.after(&reply);
            if reply.is_ok() {
                self.flow.races.retries_ok.fetch_add(1, Ordering::Relaxed);
                self.encounter_version = reply.version;
                return;
            }
            if !refused(&reply) {
                return;
            }
        }
    }

    /// Reads the encounter to learn its current version (kept for the next `If-Match`)
    /// and whether it is still open.
    async fn reread(&mut self, id: &str) -> Option<String> {
        let ctx = self.send_ctx();
        let reply = self.flow.client.read(ctx, "Encounter", id).await;
        self.after(&reply);
        if reply.status != Some(200) {
            return None;
        }
        if let Some(status) = reply.body.as_ref().and_then(|b| b["status"].as_str()) {
            self.encounter = Slot::Own {
                open: dialect::is_open_status(status),
            };
        }
        self.encounter_version.clone_from(&reply.version);
        reply.version
    }
}

/// The AI agent's amendment: the encounter marked for follow-up (its priority).
fn amended(encounter: &Value) -> Value {
    let mut out = encounter.clone();
    out["priority"] = json!({
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
            "code": "UR",
            "display": "urgent"
        }]
    });
    out
}
