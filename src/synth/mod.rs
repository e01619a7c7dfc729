//! Seeded synthetic patient encounters: a patient, an in-progress encounter, vital-sign
//! observations, encounter diagnoses, medication orders, a clinical note and a claim, all
//! FHIR R4 and shaped for US Core 6.1, drawn from the code tables in `fixtures/codes/`.
//!
//! Encounter `n` of a population is a pure function of `(seed, n)` for its clinical
//! content and of the namespace for its identifiers: the same inputs give byte-identical
//! resources in any order on any thread, because each encounter draws from its own ChaCha
//! stream seeded from `(seed, n)`, never from a shared one, and nothing reads the clock.
//! Every resource carries exactly one harness identifier (system = the namespace), and
//! resources of one encounter refer to each other through `urn:uuid:` placeholder keys
//! that `resolve` swaps for server ids. Stands alone: uses no module of the crate but
//! `vocab` (table file locations).

mod check_digit;
mod claim;
mod clinical;
mod clock;
mod draw;
mod ids;
mod note;
mod person;
mod plan;
mod tables;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::source::{Location, SourceError};

pub use clock::closed;
pub use tables::CodeTables;

use ids::{Ids, Role};
use plan::Plan;

/// The identifier system of the synthetic patients' medical record numbers.
pub const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5";

/// One generated resource, ready to be written once its references are resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// `urn:uuid:…`, deterministic from `(seed, n, role)`; other resources of the
    /// encounter refer to this one as `{"reference": key}`.
    pub key: String,
    pub resource_type: String,
    /// `system|value` of its harness identifier (system = the namespace).
    pub identifier: String,
    pub body: Value,
}

/// Everything one synthetic encounter writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Encounter {
    pub n: u64,
    pub patient: Resource,
    pub encounter: Resource,
    pub vitals: Vec<Resource>,
    pub conditions: Vec<Resource>,
    pub medications: Vec<Resource>,
    pub note: Resource,
    pub claim: Resource,
}

impl Encounter {
    /// All resources in write order: patient, encounter, vitals, conditions,
    /// medications, note, claim (each refers only to resources before it).
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        std::iter::once(&self.patient)
            .chain(std::iter::once(&self.encounter))
            .chain(&self.vitals)
            .chain(&self.conditions)
            .chain(&self.medications)
            .chain(std::iter::once(&self.note))
            .chain(std::iter::once(&self.claim))
    }
}

/// A code table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unreadable, not TOML, or a key or type the table does not have.
    #[error(transparent)]
    Parse(#[from] SourceError),
    /// Parsed, but a value is wrong: a range, a check digit, a duplicate, a reference.
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
}

/// The encounters of one run: seed, namespace and code tables. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Population {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seed: u64,
    namespace: String,
    mrn_tag: String,
    tables: CodeTables,
    /// `(index, count)`: this population hands out encounters `index`, `index + count`,
    /// `index + 2·count`, … of the whole (one shard's disjoint slice); `(0, 1)`: all.
    slice: (u64, u64),
}

impl Population {
    pub fn new(seed: u64, namespace: &str, tables: CodeTables) -> Population {
        let inner = Inner {
            seed,
            namespace: namespace.to_owned(),
            mrn_tag: ids::mrn_tag(seed, namespace),
            tables,
            slice: (0, 1),
        };
        Population {
            inner: Arc::new(inner),
        }
    }

    /// Slice `index` of `count` of this population: its encounter `k` is the whole's
    /// encounter `k·count + index`, so slices never share an encounter, a key or an
    /// identifier, and together they are the whole.
    pub fn slice(self, index: u64, count: u64) -> Population {
        let count = count.max(1);
        let inner = Inner {
            seed: self.inner.seed,
            namespace: self.inner.namespace.clone(),
            mrn_tag: self.inner.mrn_tag.clone(),
            tables: self.inner.tables.clone(),
            slice: (index % count, count),
        };
        Population {
            inner: Arc::new(inner),
        }
    }

    /// Encounter `n` of this population (of its slice): pure, the same for the same
    /// `(seed, namespace, n)` and tables.
    pub fn encounter(&self, n: u64) -> Encounter {
        let p = &*self.inner;
        let (index, count) = p.slice;
        let n = n.saturating_mul(count).saturating_add(index);
        let plan = Plan::draw(&mut draw::rng(p.seed, n), &p.tables, n);
        let ids = Ids::new(p.seed, n, &p.namespace);
        let keys = ids::Keys {
            patient: ids.key(Role::Patient, None),
            encounter: ids.key(Role::Encounter, None),
            conditions: (0..plan.diagnoses.len())
                .map(|i| ids.key(Role::Condition, Some(i)))
                .collect(),
        };
        let mrn = ids::mrn(&p.mrn_tag, n);
        let indexed = |role: Role, bodies: Vec<Value>| -> Vec<Resource> {
            bodies
                .into_iter()
                .enumerate()
                .map(|(i, b)| ids.resource(role, Some(i), b))
                .collect()
        };
        Encounter {
            n,
            patient: ids.resource(Role::Patient, None, person::patient(&plan.person, &mrn)),
            encounter: ids.resource(Role::Encounter, None, clinical::encounter(&plan, &keys)),
            vitals: indexed(
                Role::Vital,
                plan.readings
                    .iter()
                    .map(|r| clinical::observation(r, &plan, &keys))
                    .collect(),
            ),
            conditions: indexed(
                Role::Condition,
                plan.diagnoses
                    .iter()
                    .map(|d| clinical::condition(d, &plan, &keys))
                    .collect(),
            ),
            medications: indexed(
                Role::Medication,
                plan.orders
                    .iter()
                    .map(|o| clinical::medication(o, &plan, &keys))
                    .collect(),
            ),
            note: ids.resource(Role::Note, None, note::document(&plan, &keys)),
            claim: ids.resource(Role::Claim, None, claim::claim(&plan, &keys)),
        }
    }
}

/// Replaces every `{"reference": key}` whose key is in `ids` with `ids[key]`
/// (`Type/id`); other references are left as they are.
pub fn resolve(body: &mut Value, ids: &HashMap<String, String>) {
    match body {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let (true, Value::String(s)) = (k == "reference", &mut *v) {
                    if let Some(id) = ids.get(s.as_str()) {
                        s.clone_from(id);
                    }
                } else {
                    resolve(v, ids);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| resolve(v, ids)),
        _ => {}
    }
}

/// Code systems the resources use.
mod system {
    pub const LOINC: &str = "http://loinc.org";
    pub const SNOMED: &str = "http://snomed.info/sct";
    pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
    pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    pub const CPT: &str = "http://www.ama-assn.org/go/cpt";
    pub const UCUM: &str = "http://unitsofmeasure.org";
    pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
    pub const TERMINOLOGY: &str = "http://terminology.hl7.org/CodeSystem";
}
