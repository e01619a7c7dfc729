//! A canonical resource, made into what this EHR accepts: the MRN under the EHR's
//! identifier system, elements it refuses outright dropped, values it does not accept
//! replaced by one it does, required elements added when a sensible value exists, and
//! encounter references handled when there is no encounter to point at. What the EHR
//! itself drops, rewrites or truncates is left alone: that is the server's doing, and
//! the checker expects it. Every change is described; a resource that cannot be made
//! acceptable is refused with the reason.

use serde_json::{Map, Value};

use super::path;
use crate::profile::{EncounterNeed, Profile, WriteRules};

/// What the resource's encounter is, for the EHR's encounter rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncounterState<'a> {
    /// Its references point at a real encounter; `open` when that one is still open.
    Present { open: bool },
    /// There is no encounter: references to `placeholder` go.
    Absent { placeholder: &'a str },
}

/// What the runner knows beyond the resource itself.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub encounter: EncounterState<'a>,
    /// A reference to the encounter's clinician, for a required `performer`, `author`,
    /// `requester` or `recorder`.
    pub practitioner: Option<&'a Value>,
}

/// The resource to send, and what was changed to make it so.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    pub body: Value,
    /// One stable line per change (`verificationStatus: \`confirmed\` → \`provisional\``).
    pub changes: Vec<String>,
}

/// Clinician-valued elements a write may need, per type: (type, element, an array?).
const CLINICIAN: &[(&str, &str, bool)] = &[
    ("Observation", "performer", true),
    ("DiagnosticReport", "performer", true),
    ("DocumentReference", "author", true),
    ("MedicationRequest", "requester", false),
    ("ServiceRequest", "requester", false),
    ("Condition", "recorder", false),
    ("AllergyIntolerance", "recorder", false),
];

/// Makes `body` acceptable to the EHR, or says why it cannot be.
pub fn write(profile: &Profile, body: &Value, ctx: &Context<'_>) -> Result<Mapped, String> {
    let rt = body
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let default = WriteRules::default();
    let rules = profile.resource(rt).map_or(&default, |r| &r.write);
    let mut out = Mapped {
        body: body.clone(),
        changes: Vec::new(),
    };
    if rt == "Patient" {
        mrn(profile, &mut out);
    }
    encounter(rules, ctx, &mut out)?;
    refused(profile, &mut out);
    allowed(rules, &mut out);
    required(rules, rt, ctx, &mut out)?;
    Ok(out)
}

/// The MRN (the identifier typed `MR`) under the EHR's MRN system.
fn mrn(profile: &Profile, out: &mut Mapped) {
    let Some(system) = super::mrn_system(profile) else {
        return;
    };
    let Some(list) = out.body.get_mut("identifier").and_then(Value::as_array_mut) else {
        return;
    };
    for id in list.iter_mut().filter(|i| is_mrn(i)) {
        if id.get("system").and_then(Value::as_str) != Some(system) {
            id["system"] = Value::from(system);
            out.changes
                .push(format!("identifier: the MRN is sent under {system}"));
        }
    }
}

fn is_mrn(identifier: &Value) -> bool {
    path::values(identifier, "type.coding.code")
        .iter()
        .any(|c| c.as_str() == Some("MR"))
}

/// The EHR's encounter rules: an encounter it needs must exist (and be open if it must);
/// without one, references to the missing encounter are dropped.
fn encounter(rules: &WriteRules, ctx: &Context<'_>, out: &mut Mapped) -> Result<(), String> {
    match (ctx.encounter, &rules.encounter) {
        (EncounterState::Present { open: false }, EncounterNeed::Open { .. }) => {
            Err("needs an open encounter and the patient's encounter is not open".into())
        }
        (EncounterState::Present { .. }, _) => Ok(()),
        (EncounterState::Absent { .. }, EncounterNeed::Open { .. }) => {
            Err("needs an open encounter and the patient has none".into())
        }
        (EncounterState::Absent { .. }, EncounterNeed::Existing { .. }) => {
            Err("needs an encounter and the patient has none".into())
        }
        (EncounterState::Absent { placeholder }, EncounterNeed::NotNeeded) => {
            let needs = rules.required.iter().any(|p| {
                p.top_level() == "encounter" || p.as_str().starts_with("context.encounter")
            });
            if needs {
                return Err("needs an encounter and the patient has none".into());
            }
            if drop_references(&mut out.body, placeholder) {
                out.changes
                    .push("encounter: not sent (the patient has no encounter)".into());
            }
            Ok(())
        }
    }
}

/// Removes every `{"reference": target}` (and what empties with it); whether any went.
fn drop_references(v: &mut Value, target: &str) -> bool {
    let is_ref = |x: &Value| x.get("reference").and_then(Value::as_str) == Some(target);
    let mut dropped = false;
    match v {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|_, x| !is_ref(x));
            dropped |= map.len() != before;
            for x in map.values_mut() {
                dropped |= drop_references(x, target);
            }
            let before = map.len();
            map.retain(|_, x| !is_empty(x));
            dropped |= map.len() != before;
        }
        Value::Array(items) => {
            let before = items.len();
            items.retain(|x| !is_ref(x));
            dropped |= items.len() != before;
            for x in items.iter_mut() {
                dropped |= drop_references(x, target);
            }
        }
        _ => {}
    }
    dropped
}

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.is_empty()) || matches!(v, Value::Object(o) if o.is_empty())
}

/// Elements the EHR refuses the whole write for (Oracle Health: `modifierExtension`,
/// `implicitRules`): not sent.
fn refused(profile: &Profile, out: &mut Mapped) {
    let refused = [
        ("modifierExtension", &profile.write.modifier_extension_error),
        ("implicitRules", &profile.write.implicit_rules_error),
    ];
    for (name, error) in refused {
        let gone = error.is_some()
            && out
                .body
                .as_object_mut()
                .and_then(|o| o.remove(name))
                .is_some();
        if gone {
            out.changes
                .push(format!("{name}: not sent (refused by {})", profile.name));
        }
    }
}

/// Values outside an `allowed` list become its first value.
fn allowed(rules: &WriteRules, out: &mut Mapped) {
    for rule in &rules.allowed {
        let Some(first) = rule.values.first() else {
            continue;
        };
        let path = rule.path.as_str();
        let mut seen = Vec::new();
        path::for_each_mut(&mut out.body, path, &mut |v| {
            if !codes(v).iter().any(|c| rule.values.contains(c)) {
                seen.push(shown(&codes(v)));
                replace(v, first);
            }
        });
        for old in seen {
            out.changes.push(format!(
                "{path}: {old} → {} (the only values accepted: {})",
                shown(std::slice::from_ref(first)),
                shown(&rule.values)
            ));
        }
    }
}

/// A value's codes: a CodeableConcept's, a Coding's, or a primitive itself.
fn codes(v: &Value) -> Vec<Value> {
    if let Some(coding) = v.get("coding").and_then(Value::as_array) {
        return coding
            .iter()
            .filter_map(|c| c.get("code").cloned())
            .collect();
    }
    match v.get("code") {
        Some(code) if v.is_object() => vec![code.clone()],
        _ => vec![v.clone()],
    }
}

fn replace(v: &mut Value, with: &Value) {
    if let Some(coding) = v.get("coding").and_then(Value::as_array) {
        let system = coding.first().and_then(|c| c.get("system")).cloned();
        let mut one = Map::new();
        if let Some(s) = system {
            one.insert("system".into(), s);
        }
        one.insert("code".into(), with.clone());
        v["coding"] = Value::Array(vec![Value::Object(one)]);
        if let Some(o) = v.as_object_mut() {
            o.remove("text");
        }
    } else if let Some(o) = v.as_object_mut().filter(|o| o.contains_key("code")) {
        o.insert("code".into(), with.clone());
        o.remove("display");
    } else {
        *v = with.clone();
    }
}

fn shown(values: &[Value]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => format!("`{s}`"),
            other => format!("`{other}`"),
        })
        .collect();
    parts.join(", ")
}

/// Required elements: added when a sensible value exists (the encounter's clinician; the
/// first accepted value of a restricted primitive), otherwise the write is refused.
fn required(
    rules: &WriteRules,
    rt: &str,
    ctx: &Context<'_>,
    out: &mut Mapped,
) -> Result<(), String> {
    for p in &rules.required {
        let name = p.as_str();
        if path::present(&out.body, name) {
            continue;
        }
        let value = clinician(rt, name, ctx).or_else(|| first_allowed(rules, name));
        match (value, out.body.as_object_mut()) {
            (Some((value, why)), Some(obj)) => {
                obj.insert(name.to_owned(), value);
                out.changes.push(format!("{name}: added ({why})"));
            }
            _ => {
                return Err(format!(
                    "needs `{name}`, which this resource does not have and has no sensible value"
                ));
            }
        }
    }
    Ok(())
}

fn clinician(rt: &str, name: &str, ctx: &Context<'_>) -> Option<(Value, &'static str)> {
    let (_, _, array) = CLINICIAN.iter().find(|(t, e, _)| *t == rt && *e == name)?;
    let who = ctx.practitioner?.clone();
    let value = if *array { Value::Array(vec![who]) } else { who };
    Some((value, "the encounter's clinician"))
}

/// The first accepted value of a top-level primitive restricted by `allowed`.
fn first_allowed(rules: &WriteRules, name: &str) -> Option<(Value, &'static str)> {
    let rule = rules.allowed.iter().find(|a| a.path.as_str() == name)?;
    let first = rule.values.first()?;
    (!first.is_object() && !name.contains('.')).then(|| (first.clone(), "the first value accepted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENC: &str = "urn:uuid:enc";

    fn clinician_ref() -> Value {
        json!({"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}, "display": "Dr. A"})
    }

    fn map(profile: &str, body: &Value, encounter: EncounterState<'_>) -> Result<Mapped, String> {
        let p = Profile::load(profile).unwrap();
        let who = clinician_ref();
        write(
            &p,
            body,
            &Context {
                encounter,
                practitioner: Some(&who),
            },
        )
    }

    fn vital() -> Value {
        json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p"}, "encounter": {"reference": "Encounter/e"},
            "effectiveDateTime": "2025-01-01T10:00:00Z",
            "valueQuantity": {"value": 70, "unit": "/min"}
        })
    }

    fn condition(encounter: &str) -> Value {
        json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed", "display": "Confirmed"}]},
            "category": [{"coding": [{"code": "encounter-diagnosis"}]}],
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J45.909"}]},
            "subject": {"reference": "Patient/p"},
            "encounter": {"reference": encounter}
        })
    }

    #[test]
    fn us_core_sends_the_canonical_resource_unchanged() {
        let open = EncounterState::Present { open: true };
        for body in [vital(), condition("Encounter/e")] {
            let m = map("us-core", &body, open).unwrap();
            assert_eq!(m.body, body);
            assert!(m.changes.is_empty(), "{:?}", m.changes);
        }
    }

    #[test]
    fn epic_conditions_are_sent_provisional() {
        let m = map(
            "epic",
            &condition("Encounter/e"),
            EncounterState::Present { open: true },
        )
        .unwrap();
        assert_eq!(
            m.body["verificationStatus"],
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "provisional"}]})
        );
        assert_eq!(m.changes.len(), 1, "{:?}", m.changes);
        assert!(
            m.changes[0].contains("`confirmed` → `provisional`"),
            "{:?}",
            m.changes
        );
    }

    #[test]
    fn without_an_encounter_epic_vitals_and_notes_are_refused_and_conditions_go_without() {
        let absent = EncounterState::Absent { placeholder: ENC };
        let mut v = vital();
        v["encounter"] = json!({"reference": ENC});
        assert_eq!(
            map("epic", &v, absent).unwrap_err(),
            "needs an open encounter and the patient has none"
        );
        let note = json!({"resourceType": "DocumentReference", "status": "current", "docStatus": "final",
            "subject": {"reference": "Patient/p"}, "type": {"text": "note"}, "content": [{"attachment": {}}],
            "context": {"encounter": [{"reference": ENC}], "period": {"start": "2025-01-01"}}});
        assert_eq!(
            map("epic", &note, absent).unwrap_err(),
            "needs an encounter and the patient has none"
        );
        let m = map("epic", &condition(ENC), absent).unwrap();
        assert!(m.body.get("encounter").is_none());
        assert!(
            m.changes
                .iter()
                .any(|c| c.starts_with("encounter: not sent")),
            "{:?}",
            m.changes
        );
        // A closed encounter does not take vitals.
        assert!(map("epic", &vital(), EncounterState::Present { open: false }).is_err());
    }

    #[test]
    fn us_core_drops_a_missing_encounter_reference_wherever_it_is() {
        let note = json!({"resourceType": "DocumentReference", "subject": {"reference": "Patient/p"},
            "context": {"encounter": [{"reference": ENC}], "period": {"start": "x"}}});
        let m = map(
            "us-core",
            &note,
            EncounterState::Absent { placeholder: ENC },
        )
        .unwrap();
        assert_eq!(m.body["context"], json!({"period": {"start": "x"}}));
    }

    #[test]
    fn the_mrn_goes_under_the_ehr_system_and_only_the_mrn() {
        let patient = json!({"resourceType": "Patient", "name": [{"family": "X"}], "gender": "female", "birthDate": "1970-01-01",
            "identifier": [
                {"type": {"coding": [{"code": "MR"}]}, "system": "urn:oid:2.16.840.1.113883.19.5", "value": "M1"},
                {"system": "urn:fhirsurge:run", "value": "patient-1"}]});
        let m = map("epic", &patient, EncounterState::Present { open: true }).unwrap();
        assert_eq!(
            m.body["identifier"][0]["system"],
            "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
        );
        assert_eq!(m.body["identifier"][1], patient["identifier"][1]);
        let m = map("us-core", &patient, EncounterState::Present { open: true }).unwrap();
        assert_eq!(m.body, patient);
    }

    #[test]
    fn oracle_vitals_get_the_clinician_as_performer_and_panels_are_refused() {
        let m = map(
            "oracle-health",
            &vital(),
            EncounterState::Present { open: true },
        )
        .unwrap();
        assert_eq!(m.body["performer"], json!([clinician_ref()]));
        assert_eq!(
            m.changes,
            vec!["performer: added (the encounter's clinician)".to_string()]
        );
        let mut bp = vital();
        bp.as_object_mut().unwrap().remove("valueQuantity");
        bp["component"] = json!([{"code": {"text": "systolic"}, "valueQuantity": {"value": 120}}]);
        let err = map("oracle-health", &bp, EncounterState::Present { open: true }).unwrap_err();
        assert!(err.contains("`valueQuantity`"), "{err}");
    }

    #[test]
    fn elements_the_ehr_refuses_are_not_sent() {
        let mut body = condition("Encounter/e");
        body["modifierExtension"] = json!([{"url": "x", "valueBoolean": true}]);
        body["implicitRules"] = json!("http://x");
        let m = map(
            "oracle-health",
            &body,
            EncounterState::Present { open: true },
        )
        .unwrap();
        assert!(m.body.get("modifierExtension").is_none() && m.body.get("implicitRules").is_none());
        assert_eq!(m.changes.len(), 2, "{:?}", m.changes);
        let m = map("us-core", &body, EncounterState::Present { open: true }).unwrap();
        assert_eq!(m.body, body);
    }

    #[test]
    fn a_restricted_primitive_is_replaced_by_an_accepted_value() {
        let mut v = vital();
        v["status"] = json!("preliminary");
        let m = map("epic", &v, EncounterState::Present { open: true }).unwrap();
        assert_eq!(m.body["status"], "final");
        let mut med = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "proposal", "subject": {"reference": "Patient/p"}});
        med["reportedBoolean"] = json!(false);
        let m = map(
            "oracle-health",
            &med,
            EncounterState::Present { open: true },
        )
        .unwrap();
        assert_eq!(
            (m.body["intent"].clone(), m.body["reportedBoolean"].clone()),
            (json!("order"), json!(true))
        );
    }
}
