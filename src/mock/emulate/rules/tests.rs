//! Unit tests of the emulated write rules: required elements, drops, rewrites,
//! truncations and remapped codes applied the way each profile declares.

use serde_json::json;

use super::*;

fn epic() -> Profile {
    Profile::load("epic").unwrap()
}

fn open_encounter(id: &str) -> Option<Encounter> {
    (id == "e1").then(|| Encounter {
        status: Some("in-progress".into()),
        subject: Some("Patient/p1".into()),
    })
}

fn vital() -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "category": [{"coding": [{"code": "vital-signs"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
           "effectiveDateTime": "2026-01-01T10:00:00Z"})
}

#[test]
fn required_elements_allowed_values_and_encounters_are_checked() {
    let p = epic();
    assert_eq!(check(&p, "Observation", &vital(), open_encounter), Ok(()));
    let mut no_time = vital();
    no_time.as_object_mut().unwrap().remove("effectiveDateTime");
    let r = check(&p, "Observation", &no_time, open_encounter).unwrap_err();
    assert_eq!(r.vendor_code.as_deref(), Some("59108"));
    assert_eq!(
        r.detail.as_deref(),
        Some("Observation.effectiveDateTime is required")
    );
    let mut lab = vital();
    lab["category"] = json!([{"coding": [{"code": "laboratory"}]}]);
    let r = check(&p, "Observation", &lab, open_encounter).unwrap_err();
    assert_eq!(r.vendor_code.as_deref(), Some("59111"));
    let mut elsewhere = vital();
    elsewhere["encounter"]["reference"] = json!("Encounter/e2");
    let r = check(&p, "Observation", &elsewhere, open_encounter).unwrap_err();
    assert_eq!(r.vendor_code.as_deref(), Some("59159"));
    let closed = |_: &str| {
        Some(Encounter {
            status: Some("finished".into()),
            subject: None,
        })
    };
    assert!(check(&p, "Observation", &vital(), closed).is_err());
    let other_patient = |_: &str| {
        Some(Encounter {
            status: None,
            subject: Some("Patient/p2".into()),
        })
    };
    assert!(check(&p, "Observation", &vital(), other_patient).is_err());
    let confirmed = json!({"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
        "code": {"text": "x"}, "verificationStatus": {"coding": [{"code": "confirmed"}]}});
    let r = check(&p, "Condition", &confirmed, open_encounter).unwrap_err();
    assert_eq!((r.status, r.vendor_code.as_deref()), (422, Some("59012")));
}

#[test]
fn modifier_extensions_and_implicit_rules_are_refused_where_declared() {
    let oracle = Profile::load("oracle-health").unwrap();
    let r = json!({"resourceType": "Basic", "code": {"modifierExtension": [{"url": "u"}]}});
    assert_eq!(
        check(&oracle, "Basic", &r, |_| None).unwrap_err().issue,
        "extension"
    );
    let r = json!({"resourceType": "Basic", "implicitRules": "u"});
    assert_eq!(
        check(&oracle, "Basic", &r, |_| None).unwrap_err().status,
        422
    );
    assert_eq!(check(&epic(), "Basic", &r, |_| None), Ok(()));
}

#[test]
fn declared_drops_rewrites_truncations_and_remaps_are_applied() {
    let p = epic();
    let mut allergy = json!({"resourceType": "AllergyIntolerance", "category": ["food"],
        "recordedDate": "2026-01-01", "patient": {"reference": "Patient/p1"},
        "code": {"text": "peanuts (as typed)", "coding": [{"code": "91935009", "display": "Peanut allergy"}]}});
    transform(&p.resources["AllergyIntolerance"].write, &mut allergy);
    assert!(allergy.get("category").is_none() && allergy.get("recordedDate").is_none());
    assert_eq!(allergy["code"]["text"], "Peanut allergy");
    let mut condition = json!({"resourceType": "Condition",
        "note": [{"text": "n".repeat(500)}, {"text": "second"}]});
    transform(&p.resources["Condition"].write, &mut condition);
    assert_eq!(condition["note"].as_array().unwrap().len(), 1);
    assert_eq!(condition["note"][0]["text"].as_str().unwrap().len(), 450);
    let mut vital = vital();
    vital["valueQuantity"] = json!({"value": 98.6, "unit": "degF"});
    transform(&p.resources["Observation"].write, &mut vital);
    assert_eq!(vital["valueQuantity"]["extension"][0]["url"], TRANSFORMED);
    assert_eq!(vital["code"]["extension"][0]["url"], TRANSFORMED);
    let oracle = Profile::load("oracle-health").unwrap();
    let mut med = json!({"resourceType": "MedicationRequest", "intent": "plan"});
    transform(&oracle.resources["MedicationRequest"].write, &mut med);
    assert_eq!(med["intent"], "order");
}

#[test]
fn coded_remaps_match_the_system() {
    let remap_rule = Remap {
        path: crate::profile::ElementPath::parse("code".into()).unwrap(),
        system: Some("http://loinc.org".into()),
        from: "8867-4".into(),
        to: "8867-5".into(),
        source: vec![],
    };
    let mut code = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4"},
                                     {"system": "other", "code": "8867-4"}]});
    remap(&remap_rule, &mut code);
    assert_eq!(code["coding"][0]["code"], "8867-5");
    assert_eq!(code["coding"][1]["code"], "8867-4");
    let mut list = json!([]);
    add_coding(&mut list, "urn:x");
    assert_eq!(list[0]["code"], "mock-unknown");
}
