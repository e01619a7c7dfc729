//! The clinical resources of an encounter, rendered from its `Plan`: the Encounter
//! (in progress), vital-sign Observations, encounter-diagnosis Conditions and
//! MedicationRequests, shaped for US Core 6.1. References to the patient, the encounter
//! and the conditions are placeholder keys.

use serde_json::{Value, json};

use super::clock::{date, instant};
use super::ids::Keys;
use super::plan::{Diagnosis, Order, Plan, Reading};
use super::system::{ICD10CM, LOINC, RXNORM, SNOMED, TERMINOLOGY, UCUM};
use super::tables::{Code, Measure, VitalKind};

/// `{system, code, display}`.
pub(crate) fn coding(system: &str, code: &Code) -> Value {
    json!({ "system": system, "code": code.code, "display": code.display })
}

/// A CodeableConcept of one coding from an HL7 terminology code system.
fn hl7(code_system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": format!("{TERMINOLOGY}/{code_system}"), "code": code, "display": display }] })
}

/// A display without its SNOMED CT semantic tag: "Asthma (disorder)" → "Asthma".
pub(crate) fn plain(display: &str) -> &str {
    match display.rfind(" (") {
        Some(i) if display.ends_with(')') => &display[..i],
        _ => display,
    }
}

/// A value of `m` as JSON: an integer at 0 decimals, else the nearest decimal.
pub(crate) fn number(m: &Measure, steps: i64) -> Value {
    if m.decimals == 0 {
        Value::from(steps)
    } else {
        Value::from(steps as f64 / m.scale())
    }
}

fn quantity(m: &Measure, steps: i64) -> Value {
    json!({ "value": number(m, steps), "unit": m.unit, "system": UCUM, "code": m.unit })
}

fn reference(key: &str) -> Value {
    json!({ "reference": key })
}

/// The Encounter, in progress; its `length` is what `closed` adds to the start.
pub(crate) fn encounter(plan: &Plan, keys: &Keys) -> Value {
    let primary = &plan.diagnoses[0].condition;
    json!({
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": json!({ "system": format!("{TERMINOLOGY}/v3-ActCode"), "code": plan.class.code.code, "display": plan.class.code.display }),
        "type": [{ "coding": [coding(SNOMED, plan.kind)], "text": plain(&plan.kind.display) }],
        "subject": reference(&keys.patient),
        "participant": [{
            "type": [hl7("v3-ParticipationType", "ATND", "attender")],
            "individual": plan.clinician.reference()
        }],
        "period": { "start": instant(plan.start) },
        "length": { "value": plan.minutes, "unit": "min", "system": UCUM, "code": "min" },
        "reasonCode": [{ "coding": [coding(SNOMED, &primary.snomed)], "text": plain(&primary.snomed.display) }],
        "serviceProvider": { "display": plan.facility }
    })
}

/// A vital-sign Observation: a `valueQuantity`, or a `component` per panel member.
pub(crate) fn observation(r: &Reading, plan: &Plan, keys: &Keys) -> Value {
    let mut body = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{
            "coding": [{ "system": format!("{TERMINOLOGY}/observation-category"), "code": "vital-signs", "display": "Vital Signs" }],
            "text": "Vital Signs"
        }],
        "code": {
            "coding": r.vital.codes.iter().map(|c| coding(LOINC, c)).collect::<Vec<_>>(),
            "text": r.vital.codes[0].display
        },
        "subject": reference(&keys.patient),
        "encounter": reference(&keys.encounter),
        "effectiveDateTime": instant(plan.vitals_at)
    });
    let (key, value) = match &r.vital.kind {
        VitalKind::Quantity(m) => ("valueQuantity", quantity(m, r.values[0])),
        VitalKind::Panel(components) => {
            let parts = components.iter().zip(&r.values).map(|((code, m), &v)| {
                json!({ "code": { "coding": [coding(LOINC, code)], "text": code.display }, "valueQuantity": quantity(m, v) })
            });
            ("component", Value::Array(parts.collect()))
        }
    };
    if let Some(obj) = body.as_object_mut() {
        obj.insert(key.into(), value);
    }
    body
}

/// An encounter-diagnosis Condition coded in ICD-10-CM and SNOMED CT.
pub(crate) fn condition(d: &Diagnosis, plan: &Plan, keys: &Keys) -> Value {
    let c = d.condition;
    json!({
        "resourceType": "Condition",
        "clinicalStatus": hl7("condition-clinical", "active", "Active"),
        "verificationStatus": hl7("condition-ver-status", "confirmed", "Confirmed"),
        "category": [hl7("condition-category", "encounter-diagnosis", "Encounter Diagnosis")],
        "code": { "coding": [coding(ICD10CM, &c.icd10), coding(SNOMED, &c.snomed)], "text": c.icd10.display },
        "subject": reference(&keys.patient),
        "encounter": reference(&keys.encounter),
        "onsetDateTime": date(d.onset),
        "recordedDate": instant(plan.at(1, 2))
    })
}

/// A MedicationRequest coded in RxNorm, with its sig, for the condition it treats.
pub(crate) fn medication(o: &Order, plan: &Plan, keys: &Keys) -> Value {
    let m = o.medication;
    let category = &plan.class.medication_category;
    json!({
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "category": [hl7("medicationrequest-category", category, &capitalized(category))],
        "medicationCodeableConcept": { "coding": [coding(RXNORM, &m.rxnorm)], "text": m.rxnorm.display },
        "subject": reference(&keys.patient),
        "encounter": reference(&keys.encounter),
        "authoredOn": instant(plan.at(3, 4)),
        "requester": plan.clinician.reference(),
        "reasonReference": [reference(&keys.conditions[o.reason])],
        "dosageInstruction": [{
            "sequence": 1,
            "text": m.dose,
            "timing": { "repeat": { "frequency": m.frequency, "period": m.period, "periodUnit": m.period_unit } },
            "asNeededBoolean": m.as_needed
        }]
    })
}

/// "outpatient" → "Outpatient".
pub(crate) fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
