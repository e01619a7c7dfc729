//! The Claim of an encounter: the visit and the services billed for its diagnoses (CPT,
//! USD), the diagnoses as references to the encounter's Conditions, and the provider,
//! insurer and coverage as logical (display or identifier only) references.

use serde_json::{Value, json};

use super::clinical::{capitalized, coding};
use super::clock::{date, instant};
use super::ids::Keys;
use super::plan::Plan;
use super::system::{CPT, TERMINOLOGY};
use super::tables::Procedure;

/// The Claim.
pub(crate) fn claim(plan: &Plan, keys: &Keys) -> Value {
    let claim_type = &plan.class.claim_type;
    let all: Vec<usize> = (1..=plan.diagnoses.len()).collect();
    let billed = std::iter::once((plan.visit, all))
        .chain(
            plan.services
                .iter()
                .map(|s| (s.procedure, vec![s.reason + 1])),
        )
        .collect::<Vec<_>>();
    let total: u64 = billed.iter().map(|(p, _)| p.cents).sum();
    let items: Vec<Value> = billed
        .iter()
        .enumerate()
        .map(|(i, (p, diagnoses))| item(plan, keys, i + 1, p, diagnoses))
        .collect();
    let diagnosis: Vec<Value> = keys
        .conditions
        .iter()
        .enumerate()
        .map(|(i, key)| json!({ "sequence": i + 1, "diagnosisReference": { "reference": key } }))
        .collect();
    let provider = match claim_type.as_str() {
        "institutional" => json!({ "display": plan.facility }),
        _ => plan.clinician.reference(),
    };
    json!({
        "resourceType": "Claim",
        "status": "active",
        "type": { "coding": [{ "system": format!("{TERMINOLOGY}/claim-type"), "code": claim_type, "display": capitalized(claim_type) }] },
        "use": "claim",
        "patient": { "reference": keys.patient },
        "billablePeriod": { "start": instant(plan.start), "end": instant(plan.end()) },
        "created": instant(plan.end()),
        "insurer": { "display": plan.payer.name },
        "provider": provider,
        "priority": { "coding": [{ "system": format!("{TERMINOLOGY}/processpriority"), "code": "normal", "display": "Normal" }] },
        "insurance": [{ "sequence": 1, "focal": true, "coverage": { "display": plan.payer.coverage } }],
        "diagnosis": diagnosis,
        "item": items,
        "total": money(total)
    })
}

fn item(plan: &Plan, keys: &Keys, sequence: usize, p: &Procedure, diagnoses: &[usize]) -> Value {
    json!({
        "sequence": sequence,
        "diagnosisSequence": diagnoses,
        "productOrService": { "coding": [coding(CPT, &p.cpt)], "text": p.cpt.display },
        "servicedDate": date(plan.start.date_naive()),
        "quantity": { "value": 1 },
        "unitPrice": money(p.cents),
        "net": money(p.cents),
        "encounter": [{ "reference": keys.encounter }]
    })
}

/// USD from cents.
fn money(cents: u64) -> Value {
    json!({ "value": cents as f64 / 100.0, "currency": "USD" })
}
