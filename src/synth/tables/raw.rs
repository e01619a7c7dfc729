//! The code-table files as written (`fixtures/codes/*.toml`): serde structs that accept
//! exactly the documented keys. `check` turns them into the validated tables; nothing
//! else reads these.

use serde::Deserialize;
use toml::Spanned;

/// A code and its display, as tables write them inline: `{ code = "…", display = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    pub code: String,
    pub display: String,
}

/// `vitals.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalsFile {
    pub vital: Vec<Spanned<Vital>>,
}

/// One `[[vital]]`: a quantity (`unit`, `min`, `max`, `decimals`) or a panel (`component`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vital {
    pub loinc: Spanned<String>,
    pub display: String,
    #[serde(default)]
    pub also: Vec<Spanned<Loinc>>,
    pub unit: Option<String>,
    pub min: Option<Spanned<f64>>,
    pub max: Option<f64>,
    pub decimals: Option<u8>,
    #[serde(default)]
    pub component: Vec<Spanned<Component>>,
}

/// A further LOINC coding of a vital.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loinc {
    pub loinc: String,
    pub display: String,
}

/// One `[[vital.component]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub loinc: Spanned<String>,
    pub display: String,
    pub unit: String,
    pub min: Spanned<f64>,
    pub max: f64,
    pub decimals: u8,
}

/// `conditions.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionsFile {
    pub condition: Vec<Spanned<Condition>>,
}

/// One `[[condition]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub icd10: Spanned<Coding>,
    pub snomed: Spanned<Coding>,
    pub chronic: bool,
    #[serde(default)]
    pub min_age: u32,
    #[serde(default)]
    pub medications: Vec<Spanned<String>>,
    #[serde(default)]
    pub procedures: Vec<Spanned<String>>,
}

/// `medications.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationsFile {
    pub medication: Vec<Spanned<Medication>>,
}

/// One `[[medication]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Medication {
    pub rxnorm: Spanned<String>,
    pub display: String,
    pub dose: String,
    pub timing: Spanned<Timing>,
    #[serde(default)]
    pub as_needed: bool,
}

/// FHIR `Timing.repeat`: `frequency` times per `period` `unit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    pub frequency: u32,
    pub period: u32,
    pub unit: String,
}

/// `procedures.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProceduresFile {
    pub procedure: Vec<Spanned<Procedure>>,
}

/// One `[[procedure]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub cpt: Spanned<String>,
    pub display: String,
    pub price: Spanned<f64>,
}

/// `encounters.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncountersFile {
    pub class: Vec<Spanned<Class>>,
    pub payer: Vec<Spanned<Payer>>,
}

/// One `[[class]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub code: String,
    pub display: String,
    pub weight: u32,
    pub types: Vec<Spanned<Coding>>,
    pub minutes: Spanned<[u32; 2]>,
    pub claim_type: Spanned<String>,
    pub medication_category: Spanned<String>,
    pub note: Spanned<Coding>,
    pub visits: Vec<Spanned<String>>,
}

/// One `[[payer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payer {
    pub name: String,
    pub coverage: String,
    pub weight: u32,
    #[serde(default)]
    pub min_age: u32,
}

/// `demographics.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemographicsFile {
    pub gender: Vec<Spanned<Gender>>,
    pub age: Vec<Spanned<AgeBand>>,
    pub race: Vec<Spanned<Category>>,
    pub ethnicity: Vec<Spanned<Category>>,
}

/// An administrative gender and how often it occurs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gender {
    pub code: String,
    pub weight: u32,
}

/// Ages `min..=max` in whole years and how often they occur.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeBand {
    pub min: u32,
    pub max: u32,
    pub weight: u32,
}

/// An OMB race or ethnicity category and how often it occurs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    pub display: String,
    pub weight: u32,
}
