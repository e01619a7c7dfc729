//! Per-resource-type rules: which interactions a type supports, what a search of it
//! needs, and (in `rules`) what a write of it becomes. Types a profile does not list get
//! `[resource_defaults]`.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use super::paging::{ResultCap, ResultCapFile};
use super::rules::{WriteRules, WriteRulesFile};
use crate::source::SourceError;
use crate::vocab::interaction::Interaction;

/// A type-level interaction a resource type may support: the per-type interactions of
/// [`Interaction`] plus `patch` and `delete`, which fhirsurge does not issue but an EHR
/// profile records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Read,
    Vread,
    Search,
    Create,
    /// Create with `If-None-Exist`.
    ConditionalCreate,
    Update,
    Patch,
    Delete,
    History,
}

impl Verb {
    /// The per-type verb of an interaction; `None` for system-level ones (transaction,
    /// batch, capabilities, token).
    pub fn of(interaction: Interaction) -> Option<Verb> {
        Some(match interaction {
            Interaction::Create => Self::Create,
            Interaction::ConditionalCreate => Self::ConditionalCreate,
            Interaction::Read => Self::Read,
            Interaction::Vread => Self::Vread,
            Interaction::Update => Self::Update,
            Interaction::Search => Self::Search,
            Interaction::History => Self::History,
            Interaction::Transaction
            | Interaction::Batch
            | Interaction::Capabilities
            | Interaction::Token => return None,
        })
    }

    /// Whether the verb changes server state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::ConditionalCreate | Self::Update | Self::Patch | Self::Delete
        )
    }
}

/// What one resource type supports and how the EHR treats it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceRules {
    pub interactions: BTreeSet<Verb>,
    pub search: SearchRules,
    pub write: WriteRules,
    pub notes: Option<String>,
    pub source: Vec<String>,
}

impl ResourceRules {
    pub fn supports(&self, verb: Verb) -> bool {
        self.interactions.contains(&verb)
    }
}

/// What a search of one type needs and how it pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchRules {
    /// A search must carry every parameter of at least one of these sets; empty = no
    /// requirement. Names are bare (`patient`, not `patient:Patient`).
    pub required_any: Vec<Vec<String>>,
    /// Catalogue entry answered when no set is satisfied.
    pub missing_error: Option<String>,
    /// Overrides `paging.default_count` for this type.
    pub default_count: Option<NonZeroU32>,
    /// Overrides `paging.max_count` for this type.
    pub max_count: Option<NonZeroU32>,
    /// The first page ignores `_count` (Oracle Health Observation: all social history).
    pub first_page_ignores_count: bool,
    /// Overrides `paging.result_cap` for this type.
    pub result_cap: Option<ResultCap>,
    pub source: Vec<String>,
}

impl SearchRules {
    /// Whether a search with these parameter names meets `required_any`. Modifiers
    /// (`subject:Patient`) and the control parameters' values do not matter.
    pub fn satisfied_by<'a>(&self, params: impl IntoIterator<Item = &'a str>) -> bool {
        if self.required_any.is_empty() {
            return true;
        }
        let sent: BTreeSet<&str> = params
            .into_iter()
            .map(|p| p.split(':').next().unwrap_or(p))
            .collect();
        self.required_any
            .iter()
            .any(|set| set.iter().all(|p| sent.contains(p.as_str())))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourceFile {
    interactions: Spanned<Vec<Verb>>,
    #[serde(default)]
    search: Option<Spanned<SearchFile>>,
    #[serde(default)]
    write: Option<Spanned<WriteRulesFile>>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    source: SourceField,
}

/// `[resource_defaults]`: interactions and search rules of unlisted types (no write
/// rules: those are per type, so the checker knows every expected change by type).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultsFile {
    interactions: Spanned<Vec<Verb>>,
    #[serde(default)]
    search: Option<Spanned<SearchFile>>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchFile {
    #[serde(default)]
    required_any: Vec<Vec<String>>,
    #[serde(default)]
    missing_error: Option<Spanned<String>>,
    #[serde(default)]
    default_count: Option<NonZeroU32>,
    #[serde(default)]
    max_count: Option<NonZeroU32>,
    #[serde(default)]
    first_page_ignores_count: bool,
    #[serde(default)]
    result_cap: Option<ResultCapFile>,
    #[serde(default)]
    source: SourceField,
}

impl DefaultsFile {
    pub fn validate(self, ctx: &Ctx<'_>, conditional: bool) -> Result<ResourceRules, SourceError> {
        let interactions = verbs(ctx, self.interactions, conditional, "resource_defaults")?;
        Ok(ResourceRules {
            interactions,
            search: validate_search(ctx, self.search, "resource_defaults.search")?,
            write: WriteRules::default(),
            notes: self.notes,
            source: ctx.cite(self.source, "resource_defaults.source")?,
        })
    }
}

impl ResourceFile {
    /// `defaults` supplies the search rules when the type has no `search` table.
    pub fn validate(
        self,
        ctx: &Ctx<'_>,
        name: &Spanned<String>,
        conditional: bool,
        defaults: &ResourceRules,
    ) -> Result<ResourceRules, SourceError> {
        let key = format!("resources.{}", name.get_ref());
        if !is_r4_type(name.get_ref()) {
            return Err(ctx.error(
                name.span(),
                format!("{key}: `{}` is not a FHIR R4 resource type", name.get_ref()),
            ));
        }
        let interactions = verbs(ctx, self.interactions, conditional, &key)?;
        let search = match self.search {
            Some(s) => validate_search(ctx, Some(s), &format!("{key}.search"))?,
            None => defaults.search.clone(),
        };
        let write = match self.write {
            Some(w) => {
                let writable = interactions.iter().any(|v| v.is_write());
                if !writable {
                    return Err(ctx.error(
                        w.span(),
                        format!("{key}.write: the type has no write interaction"),
                    ));
                }
                let span = w.span();
                w.into_inner()
                    .validate(ctx, &format!("{key}.write"), span)?
            }
            None => WriteRules::default(),
        };
        Ok(ResourceRules {
            interactions,
            search,
            write,
            notes: self.notes,
            source: ctx.cite(self.source, &format!("{key}.source"))?,
        })
    }
}

fn verbs(
    ctx: &Ctx<'_>,
    list: Spanned<Vec<Verb>>,
    conditional: bool,
    key: &str,
) -> Result<BTreeSet<Verb>, SourceError> {
    let span = list.span();
    let set: BTreeSet<Verb> = list.into_inner().into_iter().collect();
    if set.contains(&Verb::ConditionalCreate) && !conditional {
        return Err(ctx.error(
            span,
            format!("{key}.interactions: conditional_create needs write.conditional_create = true"),
        ));
    }
    Ok(set)
}

fn validate_search(
    ctx: &Ctx<'_>,
    file: Option<Spanned<SearchFile>>,
    key: &str,
) -> Result<SearchRules, SourceError> {
    let Some(f) = file else {
        return Ok(SearchRules::default());
    };
    let span = f.span();
    let f = f.into_inner();
    let missing_error = match (f.required_any.is_empty(), f.missing_error) {
        (false, Some(e)) => Some(ctx.error_ref(e, &format!("{key}.missing_error"))?),
        (true, None) => None,
        (true, Some(e)) => {
            return Err(ctx.error(
                e.span(),
                format!("{key}.missing_error without `required_any`"),
            ));
        }
        (false, None) => {
            return Err(ctx.error(span, format!("{key}.required_any needs `missing_error`")));
        }
    };
    if f.required_any.iter().any(Vec::is_empty) {
        return Err(ctx.error(span, format!("{key}.required_any holds an empty set")));
    }
    Ok(SearchRules {
        required_any: f.required_any,
        missing_error,
        default_count: f.default_count,
        max_count: f.max_count,
        first_page_ignores_count: f.first_page_ignores_count,
        result_cap: f
            .result_cap
            .map(|c| c.validate(ctx, &format!("{key}.result_cap")))
            .transpose()?,
        source: ctx.cite(f.source, &format!("{key}.source"))?,
    })
}

/// Whether `name` is a FHIR R4 (4.0.1) resource type.
pub fn is_r4_type(name: &str) -> bool {
    R4_TYPES.binary_search(&name).is_ok()
}

/// The FHIR R4 (4.0.1) resource types, sorted.
const R4_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];
