//! The clinical code tables the generator draws from, as data files
//! (`fixtures/codes/*.toml`): vital signs (LOINC, UCUM, plausible ranges), conditions
//! (ICD-10-CM + SNOMED CT), medications (RxNorm), billable services (CPT), encounter
//! classes and payers, and demographics. The shipped files are embedded in the binary;
//! `load` reads the same files from a directory. Parsed with serde, then validated once
//! (ranges, check digits, duplicates, cross-references) into the types below, so the
//! generator never meets a bad table. Uses `vocab::source` only.

mod check;
mod raw;

use std::path::{Path, PathBuf};

use super::Error;
use crate::source;

/// The table files, in the order `check` reads them.
const FILES: [&str; 6] = [
    "vitals.toml",
    "conditions.toml",
    "medications.toml",
    "procedures.toml",
    "encounters.toml",
    "demographics.toml",
];

/// The shipped tables, in the order of `FILES`.
const BUILTIN: [&str; 6] = [
    include_str!("../../../fixtures/codes/vitals.toml"),
    include_str!("../../../fixtures/codes/conditions.toml"),
    include_str!("../../../fixtures/codes/medications.toml"),
    include_str!("../../../fixtures/codes/procedures.toml"),
    include_str!("../../../fixtures/codes/encounters.toml"),
    include_str!("../../../fixtures/codes/demographics.toml"),
];

/// All code tables, parsed and validated.
#[derive(Clone, Debug)]
pub struct CodeTables {
    pub(crate) vitals: Vec<Vital>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) medications: Vec<Medication>,
    pub(crate) procedures: Vec<Procedure>,
    pub(crate) classes: Vec<Class>,
    pub(crate) payers: Vec<Payer>,
    pub(crate) people: Demographics,
}

impl CodeTables {
    /// The tables shipped in `fixtures/codes/`, embedded in the binary.
    pub fn builtin() -> Result<CodeTables, Error> {
        let dir = Path::new("fixtures/codes");
        check::tables(&FILES.map(|f| dir.join(f)), &BUILTIN)
    }

    /// The same six files read from `dir`; an error names `file:line:column`.
    pub fn load(dir: &Path) -> Result<CodeTables, Error> {
        let files: [PathBuf; 6] = FILES.map(|f| dir.join(f));
        let mut texts: [String; 6] = Default::default();
        for (text, path) in texts.iter_mut().zip(&files) {
            *text = source::read(path)?;
        }
        check::tables(&files, &texts.each_ref().map(String::as_str))
    }
}

/// A code of some code system and its display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Code {
    pub code: String,
    pub display: String,
}

/// A vital sign: its codings (the first is the primary LOINC code) and what is measured.
#[derive(Clone, Debug)]
pub(crate) struct Vital {
    pub codes: Vec<Code>,
    pub kind: VitalKind,
}

#[derive(Clone, Debug)]
pub(crate) enum VitalKind {
    /// One value (`Observation.valueQuantity`).
    Quantity(Measure),
    /// A panel of components (`Observation.component`), drawn correlated.
    Panel(Vec<(Code, Measure)>),
}

/// A plausible range in a UCUM unit, at a fixed precision: values are `k / 10^decimals`
/// for whole `k` in `lo..=hi`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Measure {
    pub unit: String,
    pub lo: i64,
    pub hi: i64,
    pub decimals: u8,
}

impl Measure {
    /// `10^decimals`.
    pub fn scale(&self) -> f64 {
        10f64.powi(i32::from(self.decimals))
    }
}

/// An encounter diagnosis. `medications` and `procedures` index the other tables.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    pub icd10: Code,
    pub snomed: Code,
    pub chronic: bool,
    pub min_age: u32,
    pub medications: Vec<usize>,
    pub procedures: Vec<usize>,
}

/// An orderable medication with its sig and `Timing.repeat`.
#[derive(Clone, Debug)]
pub(crate) struct Medication {
    pub rxnorm: Code,
    pub dose: String,
    pub frequency: u32,
    pub period: u32,
    pub period_unit: String,
    pub as_needed: bool,
}

/// A billable service and its charge in cents.
#[derive(Clone, Debug)]
pub(crate) struct Procedure {
    pub cpt: Code,
    pub cents: u64,
}

/// An encounter class (v3 ActCode) and what goes with it. `visits` index `procedures`.
#[derive(Clone, Debug)]
pub(crate) struct Class {
    pub code: Code,
    pub weight: u32,
    pub types: Vec<Code>,
    pub minutes: (u32, u32),
    pub claim_type: String,
    pub medication_category: String,
    pub note: Code,
    pub visits: Vec<usize>,
}

/// A (fictitious) health plan.
#[derive(Clone, Debug)]
pub(crate) struct Payer {
    pub name: String,
    pub coverage: String,
    pub weight: u32,
    pub min_age: u32,
}

/// Who the patients are.
#[derive(Clone, Debug)]
pub(crate) struct Demographics {
    /// Administrative gender codes and weights.
    pub genders: Vec<(String, u32)>,
    /// `(min, max, weight)`, ages in whole years.
    pub ages: Vec<(u32, u32, u32)>,
    pub races: Vec<(Code, u32)>,
    pub ethnicities: Vec<(Code, u32)>,
}
