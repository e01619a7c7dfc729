//! The scope-enforcement probe (minimum necessary at the API): at the end of the load
//! phase, with `[auth] kind = "smart_backend"`, a second client asks the token endpoint
//! for narrower scopes (`[scope_probe] scopes`, default read/search on Patient), sends
//! one control request those scopes allow, then each probe request they do not (`plan`).
//! Every request is recorded in the history under the `scope_probe` phase. Each one the
//! target accepts is a `scope_not_enforced` finding naming what was tried, the scopes
//! held and the answer's status (never a token). When the probe cannot say anything —
//! no SMART auth, the narrower token refused or broader than asked, the control refused
//! — the section says not measured, with the reason.

mod plan;

use serde_json::{Value, json};

use crate::check::{Finding, Kind};
use crate::fhir::{Client, Ctx, Recorder, Reply, Settings, auth};
use crate::history::Phase;
use crate::profile::{AuthKind, Profile, ScopeStyle};
use crate::report::access::{Scope, Status, Tried};
use crate::scenario::Scenario;

use super::readback::Target;
use plan::{Action, Answer, Held, Step};

/// What the probe needs of the run.
pub struct Setup<'a> {
    pub scenario: &'a Scenario,
    pub profile: &'a Profile,
    /// The run's client settings (the narrower client is built from them).
    pub settings: Settings,
    pub recorder: &'a Recorder,
    /// The run's own client, which reads the patient the update probe writes back.
    pub client: &'a Client,
    /// What the run wrote so far.
    pub targets: Vec<Target>,
    pub process: u64,
}

/// The scope section and its findings.
pub struct Probed {
    pub scope: Scope,
    pub findings: Vec<Finding>,
}

pub fn not_measured(reason: impl Into<String>) -> Probed {
    Probed {
        scope: Scope {
            reason: Some(reason.into()),
            ..Scope::default()
        },
        findings: Vec::new(),
    }
}

/// Why the probe cannot run here, or the scopes to ask for.
fn scopes(s: &Setup<'_>) -> Result<(Box<auth::SmartConfig>, Vec<String>), String> {
    if !s.scenario.scope_probe.enabled {
        return Err("[scope_probe] enabled = false in the scenario".into());
    }
    let smart = match &s.settings.auth {
        auth::Config::Smart(smart) => smart.clone(),
        auth::Config::None => {
            return Err(
                "no [auth]: the target takes no token, so there are no scopes to narrow".into(),
            );
        }
        auth::Config::Bearer { .. } | auth::Config::Basic { .. } => {
            return Err("[auth] is not smart_backend: only a SMART authorization server issues a token for narrower scopes".into());
        }
    };
    let style = match &s.profile.auth.kind {
        AuthKind::SmartBackend(sb) => Some(sb.scope),
        AuthKind::None => None,
    };
    if style == Some(ScopeStyle::None) && s.scenario.scope_probe.scopes.is_empty() {
        return Err(format!(
            "the EHR profile `{}` says its token endpoint ignores the `scope` parameter (grants follow the app registration): a narrower token needs a second registered client",
            s.profile.name
        ));
    }
    let asked = if s.scenario.scope_probe.scopes.is_empty() {
        plan::default_scopes(style == Some(ScopeStyle::V1))
    } else {
        s.scenario.scope_probe.scopes.clone()
    };
    Ok((smart, asked))
}

/// Runs the probe.
pub async fn probe(s: Setup<'_>) -> Probed {
    let (mut smart, asked) = match scopes(&s) {
        Ok(x) => x,
        Err(why) => return not_measured(why),
    };
    let Some((patient, identifier)) = first(&s.targets, |rt| rt == "Patient") else {
        return not_measured("the run wrote no Patient with a server id: nothing to probe");
    };
    let other = first(&s.targets, |rt| rt == "Observation");
    smart.scopes = asked.clone();
    let mut settings = s.settings.clone();
    settings.auth = auth::Config::Smart(smart);
    let narrow = match Client::new(settings, s.recorder.clone()) {
        Ok(c) => c,
        Err(e) => return not_measured(format!("the narrower client cannot be built: {e}")),
    };
    if let Err(e) = narrow.authenticate_in(s.process, Phase::ScopeProbe).await {
        return not_measured(format!(
            "the token endpoint refused a token for the narrower scopes `{}`: {e}",
            asked.join(" ")
        ));
    }
    let held_text = narrow.granted_scope().unwrap_or_else(|| asked.join(" "));
    let held = Held::parse(&held_text);
    let steps = plan::plan(&held, "Observation", other.is_some());
    if steps.iter().all(|st| st.in_scope) {
        return not_measured(format!(
            "the server granted `{held_text}` when asked for `{}`: no probe request falls outside it",
            asked.join(" ")
        ));
    }
    let ids = Ids {
        patient,
        identifier,
        other,
    };
    run(&s, &narrow, &steps, &ids, held_text).await
}

/// The run's patient and resource of the other type the probe addresses.
struct Ids {
    patient: String,
    /// The patient's harness identifier (`system|value`).
    identifier: String,
    other: Option<(String, String)>,
}

/// The first target of a type with a server id: (id, identifier).
fn first(targets: &[Target], is: impl Fn(&str) -> bool) -> Option<(String, String)> {
    targets.iter().find_map(|t| {
        let id = t.ids.iter().next().filter(|_| is(&t.resource_type))?;
        Some((id.clone(), t.identifier.clone()))
    })
}

async fn run(s: &Setup<'_>, narrow: &Client, steps: &[Step], ids: &Ids, held: String) -> Probed {
    let ctx = Ctx {
        process: s.process,
        phase: Phase::ScopeProbe,
        step: Some("scope_probe"),
        intended: None,
        group: None,
    };
    let mut scope = Scope {
        scopes: Some(held.clone()),
        ..Scope::default()
    };
    let mut findings = Vec::new();
    for step in steps {
        let Some((reply, id, identifier)) = send(s, narrow, ctx, step, ids).await else {
            continue;
        };
        scope.tried.push(Tried {
            request: step.request(),
            needs: step.needs(),
            in_scope: step.in_scope,
            status: reply.status,
            invoke: reply.index,
        });
        let answer = plan::answer(reply.status);
        if step.in_scope {
            if answer == Answer::Refused {
                scope.reason = Some(format!(
                    "the narrower token was refused within its own scopes (HTTP {} for {}): enforcement cannot be told apart from a token the server does not honour",
                    reply.status.unwrap_or_default(),
                    step.request()
                ));
                return Probed { scope, findings };
            }
            continue;
        }
        scope.probes += 1;
        match answer {
            Answer::Refused => scope.refused += 1,
            Answer::Inconclusive => scope.inconclusive += 1,
            Answer::Accepted => {
                scope.accepted += 1;
                findings.push(Finding {
                    kind: Kind::ScopeNotEnforced,
                    resource_type: step.resource_type.clone(),
                    id,
                    identifier,
                    detail: format!(
                        "{} (needs {}) with a token holding `{held}` was accepted: HTTP {}",
                        step.request(),
                        step.needs(),
                        reply.status.unwrap_or_default()
                    ),
                    evidence: vec![reply.index],
                });
            }
        }
    }
    if scope.probes > 0 && scope.probes == scope.inconclusive {
        scope.reason = Some(format!(
            "none of the {} out-of-scope requests got a clear answer (a success, 401 or 403)",
            scope.probes
        ));
    } else if scope.probes > 0 {
        scope.status = Status::Measured;
    } else {
        scope.reason = Some("no out-of-scope request could be sent".into());
    }
    Probed { scope, findings }
}

/// Sends one step; `None` when it cannot be sent (no resource to update). Returns the
/// reply and the id and identifier of the resource it concerns.
async fn send(
    s: &Setup<'_>,
    narrow: &Client,
    ctx: Ctx,
    step: &Step,
    ids: &Ids,
) -> Option<(Reply, Option<String>, Option<String>)> {
    let rt = step.resource_type.as_str();
    let patient = (Some(ids.patient.clone()), Some(ids.identifier.clone()));
    Some(match (step.action, rt) {
        (Action::Read, "Patient") => (
            narrow.read(ctx, rt, &ids.patient).await,
            patient.0,
            patient.1,
        ),
        (Action::Read, _) => {
            let (id, identifier) = ids.other.clone()?;
            (narrow.read(ctx, rt, &id).await, Some(id), Some(identifier))
        }
        (Action::Search, _) => {
            let reference = format!("Patient/{}", ids.patient);
            let reply = narrow
                .search(ctx, rt, &[("patient", &reference)], None)
                .await;
            (reply, None, None)
        }
        (Action::Create, _) => {
            let identifier = probe_identifier(&ids.identifier, ctx.process);
            let body = observation(&ids.patient, &identifier);
            let reply = narrow.create(ctx, &body, &identifier, false).await;
            let id = reply.id.clone();
            (reply, id, Some(identifier))
        }
        (Action::Update, _) => {
            let fixture = Ctx {
                step: Some("scope_probe_fixture"),
                ..ctx
            };
            let current = s.client.read(fixture, rt, &ids.patient).await;
            let ok = current.is_ok();
            let body = current.body.filter(|_| ok)?;
            let reply = narrow.update(ctx, &body, &ids.patient, None).await;
            (reply, patient.0, patient.1)
        }
    })
}

/// A harness identifier for the probe's Observation, in the run's namespace.
fn probe_identifier(patient_identifier: &str, process: u64) -> String {
    let system = patient_identifier
        .split_once('|')
        .map_or(patient_identifier, |(s, _)| s);
    format!("{system}|scope-probe-{process}")
}

/// A vital sign about the patient: what an integration scoped to read patients must not
/// be able to write.
fn observation(patient: &str, identifier: &str) -> Value {
    let (system, value) = identifier.split_once('|').unwrap_or(("", identifier));
    json!({
        "resourceType": "Observation",
        "identifier": [{"system": system, "value": value}],
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"
        }]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}
