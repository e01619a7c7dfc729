//! The runner's side of a profile: how a canonical FHIR R4 interaction is said in one
//! EHR's dialect. Pure functions, data in and data out: whether to do an interaction,
//! replace it with what a real integration does, or skip it (with the reason); what a
//! resource must look like to be accepted (`body`); which search parameters a search
//! must carry (`search`); which error a failed page is (`errors`); and which of the
//! behaviours seen in responses the profile declares (`quirk`).
//!
//! Knows FHIR R4 and the [`Profile`] model only: nothing of the synthetic data, the
//! client or the run.

mod body;
mod errors;
mod path;
mod quirk;
mod search;

pub use body::{Context, EncounterState, Mapped, write};
pub use errors::{matches_error, page_expired};
pub use quirk::{Quirk, declared, declares};
pub use search::{Search, search};

use super::{IfMatch, Profile, Verb};

/// What the runner does about one interaction the canonical workflow wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The EHR supports it.
    Do,
    /// The EHR does not support it; a real integration does this instead.
    Replace(Replacement),
    /// Nothing a real integration could do instead: not done, for this reason.
    Skip(String),
}

/// What stands in for an unsupported interaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// A create of a resource the EHR owns (Epic cannot create an Encounter; read-only
    /// EHRs do not register patients): find the existing one of the patient by search
    /// and use it.
    UseExisting,
    /// A conditional create (`If-None-Exist`) the EHR does not take: a plain create
    /// (a retried create may then file twice).
    PlainCreate,
}

/// Resource types an integration finds rather than creates when the EHR will not let
/// it create them: the patient and the visit exist in the EHR before the AI looks.
const FOUND_NOT_CREATED: [&str; 2] = ["Patient", "Encounter"];

/// Whether and how to do `verb` on `resource_type` against this EHR.
pub fn interaction(profile: &Profile, resource_type: &str, verb: Verb) -> Decision {
    if profile.supports_verb(resource_type, verb) {
        return Decision::Do;
    }
    let create = matches!(verb, Verb::Create | Verb::ConditionalCreate);
    if verb == Verb::ConditionalCreate && profile.supports_verb(resource_type, Verb::Create) {
        Decision::Replace(Replacement::PlainCreate)
    } else if create
        && FOUND_NOT_CREATED.contains(&resource_type)
        && profile.supports_verb(resource_type, Verb::Search)
    {
        Decision::Replace(Replacement::UseExisting)
    } else {
        Decision::Skip(unsupported(profile))
    }
}

/// "not supported by epic".
pub fn unsupported(profile: &Profile) -> String {
    format!("not supported by {}", profile.name)
}

/// Whether updates carry `If-Match` (not when the EHR ignores or refuses it).
pub fn sends_if_match(profile: &Profile) -> bool {
    !matches!(profile.write.if_match, IfMatch::Unsupported)
}

/// The identifier system the EHR gives medical record numbers, when the profile says.
pub fn mrn_system(profile: &Profile) -> Option<&str> {
    profile.identifiers.mrn_system.as_deref()
}

/// `Encounter.status` values of an encounter still open (not finished, cancelled or a
/// future appointment): what Epic vitals need.
pub fn is_open_status(status: &str) -> bool {
    matches!(status, "arrived" | "triaged" | "in-progress" | "onleave")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Profile {
        Profile::load(name).unwrap()
    }

    #[test]
    fn epic_cannot_create_an_encounter_so_an_existing_one_is_used() {
        let epic = load("epic");
        assert_eq!(
            interaction(&epic, "Encounter", Verb::Create),
            Decision::Replace(Replacement::UseExisting)
        );
        assert_eq!(interaction(&epic, "Patient", Verb::Create), Decision::Do);
        assert_eq!(
            interaction(&epic, "MedicationRequest", Verb::Create),
            Decision::Skip("not supported by epic".into())
        );
        assert_eq!(
            interaction(&epic, "Claim", Verb::Create),
            Decision::Skip("not supported by epic".into())
        );
        assert_eq!(
            interaction(&epic, "Encounter", Verb::Update),
            Decision::Skip("not supported by epic".into())
        );
    }

    #[test]
    fn conditional_create_falls_back_to_a_plain_create_where_unsupported() {
        let epic = load("epic");
        assert_eq!(
            interaction(&epic, "Observation", Verb::ConditionalCreate),
            Decision::Replace(Replacement::PlainCreate)
        );
        let us = load("us-core");
        assert_eq!(
            interaction(&us, "Observation", Verb::ConditionalCreate),
            Decision::Do
        );
    }

    #[test]
    fn read_only_ehrs_look_the_patient_up_instead_of_registering_it() {
        for name in ["athenahealth", "eclinicalworks", "meditech"] {
            let p = load(name);
            assert_eq!(
                interaction(&p, "Patient", Verb::Create),
                Decision::Replace(Replacement::UseExisting),
                "{name}"
            );
            assert!(matches!(
                interaction(&p, "Condition", Verb::Create),
                Decision::Skip(_)
            ));
        }
    }

    #[test]
    fn if_match_and_mrn_follow_the_profile() {
        assert!(sends_if_match(&load("us-core")));
        assert!(sends_if_match(&load("oracle-health")));
        assert!(!sends_if_match(&load("epic")));
        assert_eq!(
            mrn_system(&load("epic")),
            Some("urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14")
        );
        assert_eq!(mrn_system(&load("us-core")), None);
        assert!(is_open_status("in-progress") && !is_open_status("finished"));
    }
}
